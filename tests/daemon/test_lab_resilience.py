"""Faults from production, in a namespace lab: an interface deleted and re-created, a VIP
deleted by hand on the master (issue 16, items 1 and 2). keepalived 2.2.7's figures for the
same scenarios come from tests/daemon/bench_resilience.py (same code, same run)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hagate.lab import Lab

from .labkit import VIP, holders, instance, log_of, status, vrrp_conf, wait_state
from .resilience import NODES, interface_recreated, start_pair, vip_deleted

pytestmark = pytest.mark.lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtr", nodes=NODES) as lab:
        yield lab


def test_interface_deleted_and_recreated_master_recovers(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    result = interface_recreated(lab, "hagate")
    # Recovery: FAULT -> (owner, priority 255) MASTER as soon as the link is up; the VIP is
    # added on the new interface and n2 steps back on n1's first advert.
    assert result.seconds < 1.5, f"recovered {result.seconds:.3f} s after the interface returned"
    wait_state(lab, n1, "MASTER", 2)
    log = log_of(lab, n1)
    assert "-> FAULT: tracked interface eth0 failed" in log
    assert "VRRP socket re-opened" in log
    assert "WARNING eth0: cannot send advert" not in log
    assert "cannot add" not in log
    # It advertises on the new interface: n2 hears it and stays backup.
    time.sleep(1.2)
    assert instance(lab, n2)["master"] == "10.1.1.5"
    assert holders(lab, [n1, n2]) == ["n1"]
    before = instance(lab, n1)["counters"]["adverts_out"]
    time.sleep(1.1)
    assert instance(lab, n1)["counters"]["adverts_out"] > before


def test_fault_while_interface_is_gone(lab: Lab) -> None:
    from .labkit import delete_eth0, recreate_eth0

    n1, n2 = start_pair(lab, "hagate")
    delete_eth0(n1)
    wait_state(lab, n1, "FAULT", 3)
    lab.wait_until(lambda: n2.has_address(VIP), 5, what="n2 takes the VIP")
    recreate_eth0(n1)
    wait_state(lab, n1, "MASTER", 3)


def test_vip_deleted_by_hand_is_back_at_once(lab: Lab) -> None:
    n1 = lab.node("n1")
    result = vip_deleted(lab, "hagate")
    # keepalived: priority 0, then master again after Skew_Time (0.004 s at priority 255).
    assert result.seconds < 0.5, f"VIP back after {result.seconds:.3f} s"
    assert not result.backup_took_over
    log = log_of(lab, n1)
    assert "virtual address 10.1.1.100 was deleted" in log
    assert instance(lab, n1)["state"] == "MASTER"
    # Our own removals (a normal MASTER -> BACKUP) are not taken for an operator's.
    assert log.count("was deleted from under us") == 1


def test_flood_of_invalid_frames_backup_holds_and_drops_are_counted() -> None:
    from hagate.daemon.status import prometheus_text

    from .resilience import flood

    with Lab.create(prefix="hgtr", nodes={**NODES, "f": "10.1.1.66/24"}) as lab:
        result = flood(lab, rate=60000, seconds=3.0)
        snap = status(lab, lab.node("n2"))
    assert result.sent > 100_000
    assert not result.backup_took_vip, result
    # Two thirds of the flood (other VRIDs, lengths that contradict the count) never leave
    # the kernel; the rest is discarded by reason. The 4 MiB queue absorbs the bursts.
    assert result.kernel_drops <= 0.02 * result.sent, result
    (sock,) = snap["sockets"]
    assert sock["vrids"] == [51] and sock["receive_buffer"] >= 4 * 1024 * 1024
    assert isinstance(sock["kernel_drops"], int)
    assert "hagate_vrrp_kernel_drops_total{" in prometheus_text(snap)
    (inst,) = snap["instances"]
    assert inst["state"] == "BACKUP"
    assert inst["counters"]["discards"].get("bad_checksum", 0) > 10_000


def test_more_than_255_vips_advertise_and_sigterm_removes_them(lab: Lab) -> None:
    n1 = lab.node("n1")
    vips = [f"10.2.{i // 250}.{i % 250 + 1}/16" for i in range(300)]
    conf = vrrp_conf(state="MASTER", priority=255, vips=vips)
    proc = lab.start_hagate(n1, conf, ["--log-level", "debug"])
    wait_state(lab, n1, "MASTER", 10)
    lab.wait_until(lambda: len(n1.addresses()) >= 301, 10, what="300 VIPs on n1")
    inst = instance(lab, n1)
    assert len(inst["vips"]) == 255 and len(inst["excluded_vips"]) == 45
    before = inst["counters"]["adverts_out"]
    time.sleep(1.2)
    assert instance(lab, n1)["counters"]["adverts_out"] > before
    assert "virtual_ipaddress_excluded" in log_of(lab, n1)  # said by the model or by us
    n1.terminate()
    assert proc.wait(5) == 0
    left = {str(a.ip) for a in n1.addresses() if a.ip.version == 4}
    assert left == {"10.1.1.5"}  # its own address only
    assert "Traceback" not in log_of(lab, n1)
