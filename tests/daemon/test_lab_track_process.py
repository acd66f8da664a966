"""track_process through the daemon (keepalived 2.2.7 vrrp_track_process, weight 0): the
instance is in FAULT while the process is absent and the backup serves; once the process
runs it leaves FAULT and, preempting, is master again."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from hagate.lab import Lab

from .labkit import instance, start, vrrp_conf, wait_ready, wait_state

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtp", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


def test_track_process_faults_while_absent_and_recovers(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    comm = f"hgtp{uuid.uuid4().hex[:8]}"  # a process name no one else runs (comm <= 15)
    binary = lab.node_dir(n1) / comm
    sleep = shutil.which("sleep")
    assert sleep is not None
    shutil.copy(sleep, binary)
    top = f"vrrp_track_process app {{\n    process {comm}\n}}\n"
    track = "    track_process {\n        app\n    }"
    start(lab, n1, vrrp_conf(priority=150, version=3, advert_int=0.1, top=top,
                             instance_extra=track))  # fmt: skip
    start(lab, n2, vrrp_conf(priority=120, version=3, advert_int=0.1))
    wait_ready(lab, n1)
    wait_ready(lab, n2)
    wait_state(lab, n1, "FAULT")
    wait_state(lab, n2, "MASTER")
    proc = subprocess.Popen([str(binary), "30"])
    try:
        wait_state(lab, n1, "MASTER", timeout=5)  # polled every second, then preempts
        wait_state(lab, n2, "BACKUP")
        proc.terminate()
        proc.wait(5)
        wait_state(lab, n1, "FAULT", timeout=5)
        wait_state(lab, n2, "MASTER")
        assert instance(lab, n1)["effective_priority"] == 150
    finally:
        proc.kill()
        proc.wait()
