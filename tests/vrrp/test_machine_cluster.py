"""Several VRRP instances on the virtual-clock link: elections, failovers, preemption."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.simulate.demo import run_core_demo, seed_cluster
from hagate.simulate.link import Link
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.timers import master_down_interval, skew_time
from hagate.vrrp.tracking import TrackedItem

VIP = IPv4Address("10.1.1.100")


def params(addr: str, priority: int, **kw: object) -> VrrpParams:
    kw.setdefault("vips", (VIP,))
    return VrrpParams(vrid=51, primary_address=ip_address(addr), priority=priority, **kw)  # type: ignore[arg-type]


def mdi(priority: int, interval_cs: int = 100, version: int = 2) -> float:
    return master_down_interval(version, priority, interval_cs)


def became_master(link: Link, name: str) -> list[float]:
    return [t for t, _, a in link.transitions(name) if a.new is State.MASTER]


def last_advert_before(link: Link, name: str, t: float) -> float:
    return max(
        e.time for e in link.timeline if e.node == name and e.kind == "advert" and e.time < t
    )


def test_election_highest_priority_wins() -> None:
    link = Link()
    for i, prio in enumerate((100, 200, 150), start=1):
        link.add_node(f"r{i}", params(f"10.1.1.{i}", prio))
        link.start(f"r{i}", at=0.0)
    link.run(30.0)
    assert link.masters() == ["r2"]
    assert link.vip_holders() == ["r2"]
    # r2 waited exactly its own Master_Down_Interval; nobody else ever became master.
    assert became_master(link, "r2") == [pytest.approx(mdi(200))]
    assert became_master(link, "r1") == became_master(link, "r3") == []


def test_failover_after_exactly_master_down_interval() -> None:
    link = Link(delay=0.001)
    link.add_node("a", params("10.1.1.5", 255))
    link.add_node("b", params("10.1.1.10", 200))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.crash("a", at=10.3)
    link.run(20.0)
    last = last_advert_before(link, "a", 10.3)
    assert last == pytest.approx(10.0)
    assert became_master(link, "b") == [pytest.approx(last + 0.001 + mdi(200), abs=1e-9)]
    assert link.vip_holders() == ["b"]


def test_graceful_failover_in_skew_time() -> None:
    link = Link(delay=0.001)
    link.add_node("a", params("10.1.1.5", 255))
    link.add_node("b", params("10.1.1.10", 200))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.shutdown("a", at=10.3)
    link.run(20.0)
    assert skew_time(2, 200, 100) == 0.21875
    assert became_master(link, "b") == [pytest.approx(10.3 + 0.001 + 0.21875, abs=1e-9)]
    assert link.state("a") is None and link.vip_holders() == ["b"]


def test_seed_cluster_owner_takes_the_vip_back_despite_nopreempt() -> None:
    p1, p2 = seed_cluster()
    assert p2.nopreempt and not p2.preempt and p1.priority == 255
    link = Link()
    link.add_node("node-1", p1)
    link.add_node("node-2", p2)
    link.start("node-1", at=0.0)
    link.start("node-2", at=0.0)
    link.crash("node-1", at=10.3)
    link.run(15.0)
    assert link.vip_holders() == ["node-2"]
    link.restart("node-1", at=20.0)
    link.run(21.0)
    assert link.masters() == ["node-1"] and link.vip_holders() == ["node-1"]
    back = [t for t, _, a in link.transitions("node-2") if a.new is State.BACKUP]
    assert back[-1] == pytest.approx(20.0 + link.delay)


def test_core_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_core_demo() == 0
    out = capsys.readouterr().out
    assert "BACKUP -> MASTER: master down timer expired: no advert from 10.1.1.5" in out
    assert "MASTER -> BACKUP: higher priority advert from 10.1.1.5 (255 > 200)" in out


def test_sticky_recipe_keeps_the_vip_where_it_is() -> None:
    link = Link()
    link.add_node("a", params("10.1.1.5", 150, start_state=State.BACKUP, nopreempt=True))
    link.add_node("b", params("10.1.1.10", 100, start_state=State.BACKUP, nopreempt=True))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.run(9.0)
    assert link.vip_holders() == ["a"]
    link.crash("a", at=10.0)
    link.restart("a", at=20.0)
    link.run(60.0)
    assert link.masters() == ["b"] and link.vip_holders() == ["b"]
    assert link.state("a") is State.BACKUP
    assert len(became_master(link, "b")) == 1


def test_tie_break_on_higher_primary_address() -> None:
    link = Link()
    link.add_node("low", params("10.1.1.7", 100))
    link.add_node("high", params("10.1.1.8", 100))
    link.start("low", at=0.0)
    link.start("high", at=0.0)
    link.run(10.0)
    # Same priority, same timers: both time out together, then the lower address yields.
    assert len(became_master(link, "low")) == 1
    assert link.masters() == ["high"] and link.vip_holders() == ["high"]
    reasons = [a.reason for _, _, a in link.transitions("low") if a.new is State.BACKUP]
    assert "with higher primary address (10.1.1.8 > 10.1.1.7)" in reasons[-1]


def test_script_weight_moves_mastership_and_back() -> None:
    chk = TrackedItem("chk_gateway", weight=-50)
    link = Link()
    link.add_node("a", params("10.1.1.5", 150, tracked=(chk,)))
    link.add_node("b", params("10.1.1.10", 120))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.run(10.0)
    assert link.masters() == ["a"]
    link.set_tracked("a", "chk_gateway", False, at=10.5)
    link.run(20.0)
    assert link.machine("a").effective_priority == 100
    assert link.masters() == ["b"] and link.vip_holders() == ["b"]
    # b ignored a's priority-100 adverts and preempted one Master_Down_Interval after the
    # last advert it accepted (a's last priority-150 advert, sent at about 10 s).
    took = became_master(link, "b")[0]
    assert 10.5 < took <= 10.5 + mdi(120) + 1.0
    link.set_tracked("a", "chk_gateway", True, at=30.0)
    link.run(40.0)
    assert link.masters() == ["a"] and link.vip_holders() == ["a"]
    assert became_master(link, "a")[-1] <= 30.0 + mdi(150) + 1e-6


def test_fault_and_recovery() -> None:
    link_state = TrackedItem("eth0", weight=0)
    link = Link()
    link.add_node("a", params("10.1.1.5", 200, tracked=(link_state,)))
    link.add_node("b", params("10.1.1.10", 100))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.run(10.0)
    assert link.masters() == ["a"]
    link.set_tracked("a", "eth0", False, at=10.5)
    link.run(15.0)
    assert link.state("a") is State.FAULT
    # a said priority 0 on the way into FAULT, so b took over after its Skew_Time.
    assert became_master(link, "b") == [pytest.approx(10.5 + link.delay + skew_time(2, 100, 100))]
    link.set_tracked("a", "eth0", True, at=20.0)
    link.run(30.0)
    # Back to BACKUP, then a (200, preempt) preempts b after its Master_Down_Interval.
    assert became_master(link, "a")[-1] == pytest.approx(20.0 + mdi(200))
    assert link.masters() == ["a"] and link.vip_holders() == ["a"]


def test_v3_tenth_of_a_second_adverts() -> None:
    vip6 = IPv6Address("fd00::100")
    link = Link(delay=0.0001)
    link.add_node("a", params("fd00::1", 200, version=3, advert_int=0.1, vips=(vip6,)))
    link.add_node("b", params("fd00::2", 100, version=3, advert_int=0.1, vips=(vip6,)))
    link.start("a", at=0.0)
    link.start("b", at=0.0)
    link.run(2.0)
    assert became_master(link, "a") == [pytest.approx(mdi(200, 10, 3))] == [0.321875]
    sent = [e.time for e in link.timeline if e.node == "a" and e.kind == "advert"]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) == 17 and gaps == [pytest.approx(0.1)] * 16
    link.crash("a", at=2.05)
    link.run(3.0)
    last = last_advert_before(link, "a", 2.05)
    assert mdi(100, 10, 3) == pytest.approx(0.360937)
    expected = last + 0.0001 + mdi(100, 10, 3)
    assert became_master(link, "b") == [pytest.approx(expected, abs=1e-9)]


@settings(max_examples=25, deadline=None)
@given(
    priorities=st.lists(st.integers(1, 254), min_size=2, max_size=4, unique=True),
    downs=st.lists(st.tuples(st.integers(0, 3), st.floats(1.0, 30.0)), max_size=4),
)
def test_converges_to_the_highest_priority_live_router(
    priorities: list[int], downs: list[tuple[int, float]]
) -> None:
    link = Link()
    names = [f"r{i}" for i in range(len(priorities))]
    for i, (name, prio) in enumerate(zip(names, priorities, strict=True)):
        link.add_node(name, params(f"10.1.1.{i + 1}", prio))
        link.start(name, at=0.0)
    crashed: set[str] = set()
    for index, when in sorted(downs, key=lambda d: d[1]):
        name = names[index % len(names)]
        if name in crashed:
            link.restart(name, at=when)
            crashed.discard(name)
        else:
            link.crash(name, at=when)
            crashed.add(name)
    link.run(31.0)
    link.run(31.0 + 10.0)  # quiet period: longer than any Master_Down_Interval + an advert
    alive = [n for n in names if link.state(n) is not None]
    if not alive:
        assert link.masters() == [] and link.vip_holders() == []
        return
    best = max(alive, key=lambda n: priorities[names.index(n)])
    assert link.masters() == [best]
    assert link.vip_holders() == [best]
