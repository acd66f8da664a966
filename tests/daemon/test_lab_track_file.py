"""A weighted track_file through the daemon: the file's number times the weight moves the
effective priority (keepalived track_file.c) without a fault, a backup with a higher
file-adjusted priority takes over, and init_file writes the start value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hagate.lab import Lab

from .labkit import instance, poll, start, vrrp_conf, wait_ready, wait_state

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtf", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


def test_weighted_track_file_moves_priority_and_the_master(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    path = lab.node_dir(n1) / "level"
    top = f"track_file level {{\n    file {path}\n    weight -10\n    init_file 2\n}}\n"
    track = "    track_file {\n        level\n    }"
    start(lab, n1, vrrp_conf(priority=150, version=3, advert_int=0.1, top=top,
                             instance_extra=track))  # fmt: skip
    start(lab, n2, vrrp_conf(priority=120, version=3, advert_int=0.1))
    wait_ready(lab, n1)
    wait_ready(lab, n2)
    assert path.read_text() == "2\n"  # init_file: written, the file was missing
    assert poll(lambda: instance(lab, n1)["effective_priority"] == 130, 5)
    wait_state(lab, n1, "MASTER")
    path.write_text("4\n")  # 150 - 40 = 110 < 120: the backup preempts
    assert poll(lambda: instance(lab, n1)["effective_priority"] == 110, 5)
    wait_state(lab, n2, "MASTER")
    wait_state(lab, n1, "BACKUP")
    path.write_text("0\n")  # back to 150: n1 preempts again, never in FAULT
    wait_state(lab, n1, "MASTER")
    assert instance(lab, n1)["effective_priority"] == 150
