"""vrrp_sync_group coupling (hagate.vrrp.syncgroup): keepalived 2.2.7 vrrp_sync.c's rules."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from hagate.vrrp.actions import (
    Action,
    GroupStateChanged,
    RunNotify,
    SendAdvert,
    SendGratuitous,
)
from hagate.vrrp.advert import Advert
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.syncgroup import SyncGroup
from hagate.vrrp.tracking import TrackedItem

PEER = IPv4Address("10.0.0.9")


def member(name: str, vrid: int, priority: int = 100, **kw: object) -> VrrpMachine:
    params = VrrpParams(
        vrid=vrid,
        primary_address=IPv4Address(f"10.0.{vrid}.1"),
        vips=(IPv4Address(f"10.0.{vrid}.100"),),
        priority=priority,
        name=name,
        garp_master_delay=0,
        **kw,  # type: ignore[arg-type]
    )
    return VrrpMachine(params)


def pair(**kw: object) -> tuple[SyncGroup, VrrpMachine, VrrpMachine]:
    group = SyncGroup("G")
    a, b = member("A", 1, 100, **kw), member("B", 2, 90, **kw)
    group.join(a)
    group.join(b)
    return group, a, b


def drain(*machines: VrrpMachine) -> list[tuple[int, str, Action]]:
    """Every machine's actions with their emission order (what a driver's notifier sees)."""
    out: list[tuple[int, str, Action]] = []
    for m in machines:
        for action in m.actions():
            out.append((getattr(action, "seq", 0), m.params.name, action))
    return out


def notifications(*machines: VrrpMachine) -> list[str]:
    """The FIFO-style order of instance and group notifications."""
    lines = []
    for seq, name, action in sorted(drain(*machines), key=lambda t: t[0]):
        if isinstance(action, RunNotify):
            lines.append(f"INSTANCE {name} {action.state}")
        elif isinstance(action, GroupStateChanged):
            lines.append(f"GROUP {action.group} {action.new}")
        assert seq or not isinstance(action, RunNotify | GroupStateChanged)
    return lines


def advert(vrid: int, priority: int) -> Advert:
    return Advert(2, vrid, priority, 100, (IPv4Address(f"10.0.{vrid}.100"),))


def test_start_announces_the_group_before_its_members() -> None:
    _, a, b = pair()
    a.start(0.0)
    b.start(0.0)
    assert notifications(a, b) == ["GROUP G BACKUP", "INSTANCE A BACKUP", "INSTANCE B BACKUP"]


def test_first_timeout_waits_for_the_other_member_then_both_go_master() -> None:
    """vrrp_sync_can_goto_master: A's down timer expires first (higher priority, shorter
    skew) but B still wants BACKUP: A stays BACKUP, wanting MASTER; when B's expires, B
    becomes MASTER and pulls A (keepalived's order: B, A, then the group)."""
    group, a, b = pair()
    a.start(0.0)
    b.start(0.0)
    drain(a, b)
    ta, tb = a.get_timer(), b.get_timer()
    assert ta is not None and tb is not None and ta < tb
    a.handle_timer(ta)
    assert a.state is State.BACKUP and a.wants_group_master
    assert drain(a) == []
    b.handle_timer(tb)
    assert a.state is b.state is State.MASTER and group.state is State.MASTER
    assert notifications(a, b) == ["INSTANCE B MASTER", "INSTANCE A MASTER", "GROUP G MASTER"]


def test_an_advert_makes_a_waiting_member_want_backup_again() -> None:
    _, a, b = pair()
    a.start(0.0)
    b.start(0.0)
    ta = a.get_timer()
    assert ta is not None
    a.handle_timer(ta)
    assert a.wants_group_master
    a.receive_advert(ta + 0.1, advert(1, 200), PEER)
    assert not a.wants_group_master
    tb = b.get_timer()
    assert tb is not None
    b.handle_timer(tb)  # B may not go MASTER alone either
    assert a.state is b.state is State.BACKUP and b.wants_group_master


def masters() -> tuple[SyncGroup, VrrpMachine, VrrpMachine]:
    group, a, b = pair(tracked=(TrackedItem("chk"),))
    a.start(0.0)
    b.start(0.0)
    for m in (a, b):
        t = m.get_timer()
        assert t is not None
        m.handle_timer(t)
    t = max(a.get_timer() or 0.0, b.get_timer() or 0.0)
    a.handle_timer(t)
    b.handle_timer(t)
    assert a.state is b.state is State.MASTER
    drain(a, b)
    return group, a, b


def test_a_better_router_sends_the_whole_group_to_backup_without_priority_zero() -> None:
    group, a, b = masters()
    a.receive_advert(10.0, advert(1, 250), PEER)
    assert a.state is b.state is State.BACKUP and group.state is State.BACKUP
    b_actions = [x for _, n, x in drain(b) if n == "B"]
    assert not any(isinstance(x, SendAdvert) for x in b_actions)  # no priority-0 advert
    assert b.get_timer() == pytest.approx(10.0 + b.master_down_interval)


def test_a_member_fault_sends_the_others_to_fault_with_priority_zero() -> None:
    group, a, b = masters()
    a.set_tracked(10.0, "chk", False)
    assert a.state is b.state is State.FAULT and group.state is State.FAULT
    sent = [x.advert.priority for _, n, x in drain(a, b) if isinstance(x, SendAdvert)]
    assert sent == [0, 0]  # both masters step down at once: the peer takes over quickly


def test_the_group_leaves_fault_only_when_no_member_is_down() -> None:
    group, a, b = masters()
    a.set_tracked(10.0, "chk", False)
    b.set_tracked(11.0, "chk", False)  # B's own item fails too (already in FAULT)
    a.set_tracked(12.0, "chk", True)
    assert a.state is b.state is State.FAULT  # B still holds the group down
    drain(a, b)
    b.set_tracked(13.0, "chk", True)
    assert a.state is b.state is State.BACKUP and group.state is State.BACKUP
    assert notifications(a, b) == ["INSTANCE B BACKUP", "INSTANCE A BACKUP", "GROUP G BACKUP"]


def test_lower_priority_advert_refreshes_every_members_arp() -> None:
    _, a, b = masters()
    a.receive_advert(10.0, advert(1, 50), PEER)
    garps = [n for _, n, x in drain(a, b) if isinstance(x, SendGratuitous)]
    assert garps == ["A", "B"]


def test_group_stops_when_every_member_stopped() -> None:
    group, a, b = masters()
    a.shutdown(20.0)
    assert group.state is State.MASTER
    b.shutdown(20.0)
    assert group.state is State.STOP
    assert notifications(a, b) == ["INSTANCE A STOP", "INSTANCE B STOP", "GROUP G STOP"]


def test_owners_start_master_only_if_every_member_is_an_owner() -> None:
    group = SyncGroup("G")
    a = member("A", 1, 255, start_state=State.MASTER)
    b = member("B", 2, 100)
    group.join(a)
    group.join(b)
    a.start(0.0)
    assert a.state is State.BACKUP  # keepalived: "won't work": the group starts BACKUP
    both = SyncGroup("H")
    c = member("C", 3, 255, start_state=State.MASTER)
    d = member("D", 4, 255, start_state=State.MASTER)
    both.join(c)
    both.join(d)
    c.start(0.0)
    d.start(0.0)
    assert c.state is d.state is State.MASTER and both.state is State.MASTER


def test_a_member_started_while_another_is_down_starts_in_fault() -> None:
    group = SyncGroup("G")
    a = member("A", 1, tracked=(TrackedItem("chk", initially_ok=False),))
    b = member("B", 2)
    group.join(a)
    group.join(b)
    a.start(0.0)
    b.start(0.0)
    assert a.state is b.state is State.FAULT and group.state is State.FAULT


def test_join_needs_the_instance_name() -> None:
    m = VrrpMachine(VrrpParams(vrid=1, primary_address=PEER, vips=()))
    with pytest.raises(ValueError, match="instance name"):
        SyncGroup("G").join(m)
