"""The virtual-clock link engine: delivery, delay, partitions, loss, hooks and errors."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from hagate.simulate.link import Link, SimulationError, TimelineEntry
from hagate.vrrp.advert import Advert
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem

VIP = IPv4Address("192.0.2.100")


def pair(delay: float = 0.0005, **kw: object) -> Link:
    link = Link(delay=delay, **kw)  # type: ignore[arg-type]
    for name, addr, prio in (("a", "192.0.2.1", 200), ("b", "192.0.2.2", 100)):
        link.add_node(
            name, VrrpParams(vrid=5, primary_address=IPv4Address(addr), vips=(VIP,), priority=prio)
        )
        link.start(name, at=0.0)
    return link


def test_virtual_time_and_run_bounds() -> None:
    link = pair()
    link.run(100.0)
    assert link.now == 100.0
    assert link.masters() == ["a"]
    with pytest.raises(SimulationError, match="in the past"):
        link.run(50.0)
    with pytest.raises(SimulationError, match="in the past"):
        link.crash("a", at=10.0)
    link.run_for(5.0)
    assert link.now == 105.0


def test_propagation_delay_is_applied() -> None:
    link = pair(delay=0.25)
    link.run(10.0)
    a_master = next(t for t, _, c in link.transitions("a") if c.new is State.MASTER)
    link.shutdown("a", at=10.0)
    link.run(12.0)
    b_master = [t for t, _, c in link.transitions("b") if c.new is State.MASTER]
    # priority 0 reaches b 0.25 s later, then b waits its Skew_Time (156/256 s).
    assert b_master == [pytest.approx(10.0 + 0.25 + 156 / 256)]
    assert a_master == pytest.approx(3.21875)


def test_partition_gives_two_masters_and_healing_one() -> None:
    link = pair()
    link.run(10.0)
    link.partition(["a"], ["b"], at=10.0)
    link.run(20.0)
    assert sorted(link.masters()) == ["a", "b"]
    assert sorted(link.vip_holders()) == ["a", "b"]
    link.heal(at=20.0)
    link.run(25.0)
    assert link.masters() == ["a"] and link.vip_holders() == ["a"]
    texts = [e.text for e in link.timeline if e.node == "link"]
    assert texts == ["partition a | b", "partition healed"]


def test_total_loss_on_the_master_looks_like_a_crash() -> None:
    link = pair()
    link.run(10.0)
    link.set_loss("a", 1.0)
    link.run(20.0)
    assert sorted(link.masters()) == ["a", "b"]
    assert any(e.kind == "drop" for e in link.timeline)
    with pytest.raises(SimulationError, match="loss rate 2 outside"):
        link.set_loss("a", 2)


def test_partial_loss_is_reproducible() -> None:
    def run(seed: int) -> list[tuple[float, str, str]]:
        link = pair(rng=random.Random(seed))
        link.set_loss("a", 0.5)
        link.run(60.0)
        return [(e.time, e.node, e.text) for e in link.timeline if e.kind == "state"]

    assert run(7) == run(7)


def test_wire_hook_sees_every_delivered_advert() -> None:
    seen: list[Advert] = []

    def wire(advert: Advert) -> Advert:
        seen.append(advert)
        return replace(advert, priority=advert.priority)

    link = pair(wire=wire)
    link.run(5.0)
    assert seen and all(a.vrid == 5 for a in seen)


def test_listeners_and_timeline_format() -> None:
    got: list[TimelineEntry] = []
    link = pair(record_adverts=False)
    link.listeners.append(got.append)
    link.run(4.0)
    assert got == link.timeline
    assert not any(e.kind == "advert" for e in got)
    line = [e for e in got if e.kind == "state" and e.node == "a"][-1].format()
    assert line.startswith("    3.219s  a ") and "BACKUP -> MASTER" in line


def test_crash_restart_and_errors() -> None:
    link = pair()
    with pytest.raises(SimulationError, match="unknown node 'c' \\(nodes: a, b\\)"):
        link.crash("c")
    with pytest.raises(SimulationError, match="already exists"):
        link.add_node("a", link.node("a").params)
    link.run(5.0)
    link.crash("a", at=5.0)
    link.run(6.0)
    assert link.state("a") is None and link.node("a").vips == set()
    with pytest.raises(SimulationError, match="node 'a' is down"):
        link.machine("a")
    link.restart("a", at=7.0)
    link.run(7.0)
    assert link.state("a") is State.BACKUP
    link.restart("a", at=8.0)
    with pytest.raises(SimulationError, match="already running"):
        link.run(8.0)


def test_tracker_input_through_the_link() -> None:
    link = Link()
    link.add_node(
        "a",
        VrrpParams(
            vrid=5,
            primary_address=IPv4Address("192.0.2.1"),
            vips=(VIP,),
            priority=255,
            tracked=(TrackedItem("eth0"),),
        ),
    )
    link.start("a", at=0.0)
    link.set_tracked("a", "eth0", False, at=1.0)
    link.run(2.0)
    assert link.state("a") is State.FAULT and link.vip_holders() == []
    assert [e.text for e in link.timeline if e.kind == "event"][-1] == "tracked eth0 failed"
