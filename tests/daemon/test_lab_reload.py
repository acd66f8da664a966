"""Reload in place, beyond keepalived: on SIGHUP a master stays master and a backup stays
backup unless the new config demands otherwise. One case per test: VIP added, VIP removed,
peer added and removed, script added and removed, priority changed, advert_int changed (all
in place: no transition, no VIP that stays is ever removed); a changed VRID restarts.

A pair (n1 MASTER 200, n2 BACKUP 100, VRRPv3 0.1 s, unicast) on one bridge; every test
watches n1's addresses for the whole reload and counts both nodes' transitions.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hagate.lab import Lab, Node
from hagate.lab.watch import AddressWatcher

from .labkit import (
    VIP,
    executable,
    holders,
    instance,
    log_of,
    poll,
    run_dir,
    start,
    vrrp_conf,
    wait_ready,
    wait_state,
)

pytestmark = pytest.mark.lab

N1, N2, N3 = "10.1.1.5", "10.1.1.10", "10.1.1.20"
VIP2 = "10.1.1.101"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtl", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


def conf(node: str, **kw: object) -> str:
    me, peer = (N1, N2) if node == "n1" else (N2, N1)
    base: dict[str, object] = {
        "state": "BACKUP",
        "priority": 200 if node == "n1" else 100,
        "version": 3,
        "advert_int": 0.1,
        "src": me,
        "peers": (peer,),
    }
    base.update(kw)
    return vrrp_conf(**base)  # type: ignore[arg-type]


@dataclass
class Pair:
    lab: Lab
    n1: Node
    n2: Node
    watch: AddressWatcher
    base: tuple[int, int] = (0, 0)  # both nodes' transitions before the reload

    def reload(self, node: Node, text: str) -> None:
        before = log_of(self.lab, node).count("configuration reloaded")
        (run_dir(self.lab, node) / "keepalived.conf").write_text(text)
        pid = int((run_dir(self.lab, node) / "vrrp.pid").read_text())
        os.kill(pid, signal.SIGHUP)
        assert poll(lambda: log_of(self.lab, node).count("configuration reloaded") > before, 5), (
            log_of(self.lab, node)[-2000:]
        )

    def transitions(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            instance(self.lab, n)["counters"]["transitions"] for n in (self.n1, self.n2)
        )

    def removed(self, ip: str) -> bool:
        return any(not e.added and str(e.address.ip) == ip for e in self.watch.events)

    def states(self) -> tuple[str, str]:
        return (instance(self.lab, self.n1)["state"], instance(self.lab, self.n2)["state"])


@pytest.fixture
def pair(lab: Lab) -> Iterator[Pair]:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, conf("n1"))
    start(lab, n2, conf("n2"))
    wait_ready(lab, n1)
    wait_ready(lab, n2)
    wait_state(lab, n1, "MASTER", 5)
    wait_state(lab, n2, "BACKUP", 5)
    lab.wait_until(lambda: holders(lab, [n1, n2]) == ["n1"], 5, what="VIP on n1 only")
    time.sleep(0.3)  # n2 has heard n1
    with n1.watch_addresses() as watch:
        p = Pair(lab, n1, n2, watch)
        p.base = p.transitions()  # (the start-up election may have taken a detour)
        yield p


def _in_place(p: Pair, settle: float = 0.6) -> None:
    """After the reload: both kept their state, nobody changed state, VIP never removed."""
    time.sleep(settle)
    assert p.states() == ("MASTER", "BACKUP")
    assert p.transitions() == p.base
    assert not p.removed(VIP)
    assert holders(p.lab, [p.n1, p.n2]) == ["n1"]
    for node in (p.n1, p.n2):
        assert "restarting" not in log_of(p.lab, node)


def test_vip_added_in_place(pair: Pair) -> None:
    vips = (f"{VIP}/24", f"{VIP2}/24")
    pair.reload(pair.n2, conf("n2", vips=vips))
    pair.reload(pair.n1, conf("n1", vips=vips))
    assert poll(lambda: pair.n1.has_address(VIP2), 3)
    _in_place(pair)
    assert not pair.n2.has_address(VIP2)
    assert "vips), still MASTER" in log_of(pair.lab, pair.n1)


def test_vip_removed_in_place(pair: Pair) -> None:
    vips = (f"{VIP}/24", f"{VIP2}/24")
    for node in (pair.n2, pair.n1):
        pair.reload(node, conf(node.name, vips=vips))
    assert poll(lambda: pair.n1.has_address(VIP2), 3)
    for node in (pair.n2, pair.n1):
        pair.reload(node, conf(node.name))
    assert poll(lambda: not pair.n1.has_address(VIP2), 3)
    _in_place(pair)
    assert pair.n1.has_address(VIP)


def test_peer_added_and_removed_in_place(pair: Pair) -> None:
    pair.reload(pair.n1, conf("n1", peers=(N2, N3)))
    time.sleep(0.3)
    assert instance(pair.lab, pair.n1)["mode"] == "unicast"
    pair.reload(pair.n1, conf("n1"))
    _in_place(pair)
    # n2 kept hearing n1 all along (at 0.1 s a 0.35 s gap would have made it master)
    assert instance(pair.lab, pair.n2)["master"] == N1


def test_script_added_and_removed_in_place(
    pair: Pair, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ok = executable(tmp_path_factory.mktemp("s") / "ok.sh", "exit 0")
    top = f'vrrp_script chk {{\n    script "{ok}"\n    interval 1\n    weight 10\n}}\n'
    pair.reload(pair.n1, conf("n1", top=top, track_scripts=("chk",)))
    assert poll(lambda: instance(pair.lab, pair.n1)["effective_priority"] == 210, 3)
    assert [s["name"] for s in instance(pair.lab, pair.n1)["scripts"]] == ["chk"]
    pair.reload(pair.n1, conf("n1"))
    assert poll(lambda: instance(pair.lab, pair.n1)["effective_priority"] == 200, 3)
    _in_place(pair)


def test_priority_changed_in_place(pair: Pair) -> None:
    pair.reload(pair.n1, conf("n1", priority=150))  # still above n2's 100
    pair.reload(pair.n2, conf("n2", priority=120))
    assert instance(pair.lab, pair.n1)["base_priority"] == 150
    _in_place(pair)
    # a change that does demand a transition: n2 now above n1 (preemption takes over)
    pair.reload(pair.n2, conf("n2", priority=180))
    pair.reload(pair.n1, conf("n1", priority=160))
    wait_state(pair.lab, pair.n2, "MASTER", 3)
    wait_state(pair.lab, pair.n1, "BACKUP", 3)


def test_advert_int_changed_in_place(pair: Pair) -> None:
    pair.reload(pair.n1, conf("n1", advert_int=0.2))
    pair.reload(pair.n2, conf("n2", advert_int=0.2))
    before = instance(pair.lab, pair.n1)["counters"]["adverts_out"]
    time.sleep(1.0)
    sent = instance(pair.lab, pair.n1)["counters"]["adverts_out"] - before
    assert 3 <= sent <= 7, sent  # 5 at 0.2 s (10 at the old 0.1 s)
    _in_place(pair, settle=0.1)


def test_vrid_changed_restarts(pair: Pair) -> None:
    pair.reload(pair.n2, conf("n2", vrid=52))
    pair.reload(pair.n1, conf("n1", vrid=52))
    assert "restarting" in log_of(pair.lab, pair.n1)
    wait_state(pair.lab, pair.n1, "MASTER", 5)
    wait_state(pair.lab, pair.n2, "BACKUP", 5)
    assert instance(pair.lab, pair.n1)["vrid"] == 52
    assert instance(pair.lab, pair.n1)["counters"]["transitions"] <= 2  # a new instance


def test_family_changed_restarts() -> None:
    with Lab.create(prefix="hgtl", nodes={"n1": f"{N1}/24"}, ipv6=True) as lab:
        n1 = lab.node("n1")
        v4 = vrrp_conf(state="MASTER", priority=255, version=3, advert_int=0.1)
        start(lab, n1, v4)
        wait_ready(lab, n1)
        wait_state(lab, n1, "MASTER", 5)
        v6 = vrrp_conf(state="MASTER", priority=255, version=3, advert_int=0.1,
                       vips=("fd00:6867:7465::100/64",))  # fmt: skip
        Pair(lab, n1, n1, n1.watch_addresses()).reload(n1, v6)
        assert "restarting" in log_of(lab, n1)
        wait_state(lab, n1, "MASTER", 5)
        assert instance(lab, n1)["family"] == 6
        assert poll(lambda: not n1.has_address(VIP), 3)


def test_interface_changed_restarts(pair: Pair) -> None:
    # use_vmac moves the instance's VIPs onto the macvlan vrrp.51 (its unicast adverts stay
    # on eth0): another interface, a restart
    pair.reload(pair.n1, conf("n1", instance_extra="    use_vmac"))
    assert "restarting" in log_of(pair.lab, pair.n1)
    wait_state(pair.lab, pair.n1, "MASTER", 5)
    shown = pair.n1.run(["ip", "-4", "addr", "show", "dev", "vrrp.51"]).stdout
    assert f"inet {VIP}/24" in shown
    assert instance(pair.lab, pair.n2)["state"] == "BACKUP"


def test_vip_attributes_changed_in_place(pair: Pair) -> None:
    # the same address with a label: re-added as configured, still no transition
    pair.reload(pair.n1, conf("n1", vips=(f"{VIP}/24 label eth0:vip",)))
    assert poll(lambda: "eth0:vip" in pair.n1.run(["ip", "-4", "addr", "show"]).stdout, 3)
    time.sleep(0.5)
    assert pair.states() == ("MASTER", "BACKUP") and pair.transitions() == pair.base
    assert pair.n1.has_address(VIP)
