"""FRR's vrrpd as a second independent peer (a stack neither hagate nor keepalived wrote):
VRRPv3 at 0.1 s, IPv4 and IPv6, election and crash failover both ways round; and with
hagate's ``use_vmac`` on (its adverts then come from the virtual MAC, as FRR's do)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hagate.lab import Lab, Node

from .frrkit import Frr, available, start_frr
from .labkit import instance, poll, start, vrrp_conf, wait_ready, wait_state

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"
VIP4, VIP6 = "10.1.1.100", "fd00:6867:7465::100"
# v3 0.1 s: Master_Down_Interval 0.3 s + skew (< 0.1 s) + an advert interval of phase
TAKEOVER = 1.0


@pytest.fixture(params=[4, 6], ids=["ipv4", "ipv6"])
def family(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def lab(family: int) -> Iterator[Lab]:
    if not available():
        pytest.skip("FRR (Debian package frr) is not installed")
    with Lab.create(
        prefix="hgtf", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}, ipv6=family == 6
    ) as lab:
        yield lab


def _hagate(lab: Lab, node: Node, family: int, priority: int, extra: str = "") -> None:
    vip = f"{VIP4}/24" if family == 4 else f"{VIP6}/64"
    conf = vrrp_conf(state="BACKUP", priority=priority, version=3, advert_int=0.1,
                     vips=(vip,), instance_extra=extra)  # fmt: skip
    start(lab, node, conf)
    wait_ready(lab, node)


def _frr(lab: Lab, node: Node, family: int, priority: int) -> Frr:
    return start_frr(lab, node, priority=priority, vip=VIP4 if family == 4 else VIP6,
                     family=family)  # fmt: skip


def test_frr_master_hagate_backup_then_frr_crashes(lab: Lab, family: int) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    frr = _frr(lab, n1, family, 200)
    assert poll(frr.is_master, 5), frr.log[-2000:]
    _hagate(lab, n2, family, 100)
    wait_state(lab, n2, "BACKUP", 5)
    time.sleep(1.0)
    inst = instance(lab, n2)
    assert inst["state"] == "BACKUP" and inst["counters"]["transitions"] == 1
    master = inst["master"]
    assert master == N1 if family == 4 else str(master).startswith("fe80::")
    assert frr.is_master()
    t0 = frr.kill()
    wait_state(lab, n2, "MASTER", 3)
    took = time.monotonic() - t0
    assert took < TAKEOVER, f"hagate took over {took:.3f} s after FRR crashed"


def test_hagate_master_frr_backup_then_hagate_crashes(lab: Lab, family: int) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    _hagate(lab, n2, family, 200)
    wait_state(lab, n2, "MASTER", 5)
    frr = _frr(lab, n1, family, 100)
    time.sleep(1.5)
    assert frr.masters() == 0, frr.log[-2000:]  # FRR heard hagate and stayed Backup
    assert instance(lab, n2)["state"] == "MASTER"
    t0 = n2.crash()
    assert poll(frr.is_master, 3), frr.log[-2000:]
    took = time.monotonic() - t0
    assert took < TAKEOVER + 0.5, f"FRR took over {took:.3f} s after hagate crashed"


@pytest.mark.parametrize("extra", ["    use_vmac\n", "    use_vmac\n    vmac_xmit_base\n"],
                         ids=["vmac", "vmac_xmit_base"])  # fmt: skip
def test_hagate_with_vmac_and_frr(lab: Lab, family: int, extra: str) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    _hagate(lab, n2, family, 200, extra)
    wait_state(lab, n2, "MASTER", 5)
    frr = _frr(lab, n1, family, 100)
    time.sleep(1.5)
    assert frr.masters() == 0, frr.log[-2000:]
    shown = n2.run(["ip", "addr", "show", "dev", "vrrp.51"]).stdout
    assert (f"inet {VIP4}/24" if family == 4 else f"inet6 {VIP6}/64") in shown
    if family == 6 and "xmit_base" not in extra:  # adverts from the VMAC's link-local
        assert str(instance(lab, n2)["source"]) == "fe80::200:5eff:fe00:233"
    t0 = n2.crash()
    assert poll(frr.is_master, 3), frr.log[-2000:]
    assert time.monotonic() - t0 < TAKEOVER + 0.5
