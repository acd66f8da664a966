"""Unit tests of the state machine's parts: params, timers, tracking, the machine's API."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from hagate.vrrp.actions import (
    AddVips,
    MasterRxLowerPri,
    PriorityChanged,
    RemoveVips,
    RunNotify,
    SendAdvert,
    SendGratuitous,
    StateChanged,
)
from hagate.vrrp.advert import Advert, AuthType
from hagate.vrrp.machine import MachineError, VrrpMachine
from hagate.vrrp.params import ParamsError, VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.timers import master_down_interval, master_down_interval_us, skew_time_us
from hagate.vrrp.tracking import TrackedItem, Tracker, effective_priority

ME = IPv4Address("10.0.0.2")
PEER = IPv4Address("10.0.0.1")
VIP = IPv4Address("10.0.0.100")


def make(**kw: object) -> VrrpParams:
    kw.setdefault("vrid", 1)
    kw.setdefault("primary_address", ME)
    kw.setdefault("vips", (VIP,))
    return VrrpParams(**kw)  # type: ignore[arg-type]


def advert(priority: int, interval_cs: int = 100, version: int = 2) -> Advert:
    return Advert(version, 1, priority, interval_cs, (VIP,))


# ---- timers --------------------------------------------------------------------------


def test_rfc_timer_formulas() -> None:
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 s.
    assert skew_time_us(2, 200, 100) == 218_750
    assert master_down_interval(2, 200, 100) == 3.21875
    # RFC 9568 §6.1 with centiseconds: (256 - 100) * 100 cs / 256 = 60.9375 cs.
    assert skew_time_us(3, 100, 100) == 609_375
    assert master_down_interval_us(3, 100, 100) == 3_609_375
    # keepalived down_timer_adverts replaces the 3.
    assert master_down_interval_us(3, 100, 100, down_timer_adverts=5) == 5_609_375
    # Truncated to whole microseconds like keepalived.
    assert skew_time_us(3, 100, 50) == 304_687


# ---- params ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"vrid": 0}, "virtual_router_id 0 outside 1..255"),
        ({"priority": 256}, "priority 256 outside 1..255"),
        ({"version": 4}, "version must be 2 or 3"),
        ({"advert_int": 0.5}, "VRRPv2 needs whole seconds"),
        ({"version": 3, "advert_int": 0.005}, "VRRPv3 needs 0.01..40.95"),
        ({"version": 3, "advert_int": 41}, "VRRPv3 needs 0.01..40.95"),
        ({"vips": (IPv6Address("fd00::1"),)}, "not the same family"),
        ({"primary_address": IPv6Address("fd00::2"), "vips": ()}, "VRRPv2 is IPv4 only"),
        ({"down_timer_adverts": 0}, "down_timer_adverts 0 outside 1..100"),
        ({"preempt_delay": 1001}, "preempt_delay 1001 outside"),
        ({"garp_master_repeat": -1}, "garp_master_repeat -1 is negative"),
        ({"start_state": State.FAULT}, "state must be MASTER or BACKUP"),
        ({"tracked": (TrackedItem("a"), TrackedItem("a"))}, "names must be unique"),
    ],
)
def test_bad_params_give_clear_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        make(**kw)


def test_params_error_names_the_instance() -> None:
    with pytest.raises(ParamsError, match=r"^vrrp_instance VI_1: priority 0"):
        make(priority=0, name="VI_1")


def test_keepalived_rules_for_nopreempt_and_state() -> None:
    """The params take the config model's completed values (nopreempt and preempt_delay
    already cleared where keepalived clears them); only strict mode changes them here."""
    assert not make(nopreempt=True).preempt
    owner = make(priority=255)
    assert owner.preempt and owner.wants_master
    assert make(preempt_delay=3).effective_preempt_delay == 3.0
    strict = make(preempt_delay=3, strict_rfc=True)
    assert strict.effective_preempt_delay == 0.0 and len(strict.warnings()) == 1
    # what keepalived clears, the config model clears (one home): refused here, not cleared
    for kw in (
        {"nopreempt": True, "preempt_delay": 3},
        {"nopreempt": True, "priority": 255},
        {"nopreempt": True, "start_state": State.MASTER},
    ):
        with pytest.raises(ParamsError, match="keepalived clears it"):
            make(**kw)
    with pytest.raises(ParamsError, match="VRRPv3 has no authentication"):
        make(version=3, auth_type=AuthType.PASS, auth_data=b"x")
    assert make(priority=255, start_state=State.BACKUP).wants_master is False
    assert make(priority=255, start_state=State.BACKUP, strict_rfc=True).wants_master
    assert make(start_state=State.MASTER, strict_rfc=True).wants_master is False
    strict = make(strict_rfc=True, down_timer_adverts=5, lower_prio_no_advert=False)
    assert strict.effective_down_timer_adverts == 3 and strict.effective_lower_prio_no_advert
    assert make(garp_master_repeat=3).effective_garp_lower_prio_repeat == 3
    assert make(garp_lower_prio_repeat=0).effective_garp_lower_prio_repeat == 0


def test_tracked_item_validation() -> None:
    with pytest.raises(ValueError, match="weight 300 outside"):
        TrackedItem("x", 300)
    with pytest.raises(ValueError, match="needs a name"):
        TrackedItem("")


# ---- tracking ------------------------------------------------------------------------


def test_weights_and_reverse() -> None:
    up = TrackedItem("up", 10)
    down = TrackedItem("down", -20)
    rev = TrackedItem("rev", 10, reverse=True)
    assert (up.adjustment(True), up.adjustment(False)) == (10, 0)
    assert (down.adjustment(True), down.adjustment(False)) == (0, -20)
    # keepalived weight_multiplier -1: the sign flips, not the sense of OK/failed
    assert (rev.adjustment(True), rev.adjustment(False)) == (-10, 0)
    neg_rev = TrackedItem("neg_rev", -10, reverse=True)
    assert (neg_rev.adjustment(True), neg_rev.adjustment(False)) == (0, 10)
    assert TrackedItem("f").faults(False) and not TrackedItem("f").faults(True)
    assert TrackedItem("f", reverse=True).faults(True)
    tracker = Tracker((up, down, rev))
    assert tracker.adjustment() == 0
    assert tracker.set("down", False) and not tracker.set("down", False)
    assert tracker.adjustment() == -20
    with pytest.raises(
        ValueError, match="unknown tracked item 'nope' \\(tracked: down, rev, up\\)"
    ):
        tracker.set("nope", True)


def test_effective_priority_clamps_and_owner_ignores_weights() -> None:
    assert effective_priority(100, -200) == 1
    assert effective_priority(200, 100) == 254
    assert effective_priority(255, -100) == 255


# ---- machine API ---------------------------------------------------------------------


def test_start_twice_is_an_error() -> None:
    m = VrrpMachine(make())
    m.start(0.0)
    with pytest.raises(MachineError, match="start\\(\\) called in state BACKUP"):
        m.start(1.0)


def test_actions_drain_in_order() -> None:
    m = VrrpMachine(make(priority=255, garp_master_delay=2))
    assert m.get_timer() is None and m.next_action() is None
    m.start(0.0)
    first = m.next_action()
    assert isinstance(first, SendAdvert)
    assert first.advert == Advert(2, 1, 255, 100, (VIP,))
    rest = m.actions()
    assert [type(a) for a in rest] == [AddVips, SendGratuitous, RunNotify, StateChanged]
    assert m.actions() == [] and m.next_action() is None
    assert m.get_timer() == 1.0
    m.handle_timer(1.0)
    m.handle_timer(2.0)  # advert tick and the delayed second GARP round, both due
    kinds = [type(a) for a in m.actions()]
    assert kinds == [SendAdvert, SendAdvert, SendGratuitous]
    assert m.get_timer() == 3.0
    assert m.counters.adverts_sent == 3 and m.counters.became_master == 1


def test_adverts_carry_auth_and_v3_interval() -> None:
    m = VrrpMachine(make(priority=255, auth_type=AuthType.PASS, auth_data=b"secret\0\0"))
    m.start(0.0)
    sent = m.next_action()
    assert isinstance(sent, SendAdvert)
    assert sent.advert.auth_type is AuthType.PASS and sent.advert.auth_data == b"secret\0\0"
    m3 = VrrpMachine(make(version=3, advert_int=0.25, priority=255))
    m3.start(0.0)
    sent3 = m3.next_action()
    assert isinstance(sent3, SendAdvert) and sent3.advert.advert_int_cs == 25
    assert m3.get_timer() == 0.25


def test_tracked_fault_before_start_starts_in_fault() -> None:
    m = VrrpMachine(make(tracked=(TrackedItem("eth0"),)))
    m.set_tracked(0.0, "eth0", False)
    assert m.actions() == []
    m.start(0.0)
    assert m.state is State.FAULT and m.get_timer() is None
    assert m.actions() == [
        RunNotify(State.FAULT),
        StateChanged(State.INITIALIZE, State.FAULT, "startup: tracked eth0 down"),
    ]
    m.receive_advert(1.0, advert(100), PEER)
    assert m.actions() == [] and m.counters.adverts_ignored == 1


def test_initially_failed_item_and_unknown_name() -> None:
    m = VrrpMachine(make(tracked=(TrackedItem("chk", -30, initially_ok=False),)))
    assert m.effective_priority == 70
    with pytest.raises(ValueError, match="unknown tracked item 'chx'"):
        m.set_tracked(0.0, "chx", True)


def test_priority_change_reported_and_clamped() -> None:
    m = VrrpMachine(make(priority=20, tracked=(TrackedItem("chk", -50),)))
    m.start(0.0)
    m.actions()
    m.set_tracked(1.0, "chk", False)
    assert m.actions() == [PriorityChanged(20, 1, "tracked chk failed (weight -50)")]


def test_higher_prio_send_advert_answers_before_yielding() -> None:
    m = VrrpMachine(make(priority=255, higher_prio_send_advert=True, garp_master_delay=0))
    m.start(0.0)
    m.actions()
    m.receive_advert(0.5, advert(255), IPv4Address("10.0.0.3"))  # another owner
    kinds = [type(a) for a in m.actions()]
    assert kinds == [SendAdvert, RemoveVips, RunNotify, StateChanged]
    assert m.state is State.BACKUP and m.base_priority == 254


def test_lower_prio_no_advert_sends_no_advert_but_refreshes_arp() -> None:
    """keepalived vrrp_state_master_rx: lower_prio_no_advert skips only the advert; the
    lower-priority GARPs and the MASTER_RX_LOWER_PRI event still happen."""
    m = VrrpMachine(make(priority=255, lower_prio_no_advert=True, garp_master_delay=0))
    m.start(0.0)
    m.actions()
    m.receive_advert(0.5, advert(100), PEER)
    kinds = [type(a) for a in m.actions()]
    assert kinds == [SendGratuitous, MasterRxLowerPri] and m.get_timer() == 1.0


def test_strict_master_discards_lower_priority_but_reports_it() -> None:
    m = VrrpMachine(make(priority=255, strict_rfc=True, garp_master_delay=0))
    m.start(0.0)
    m.actions()
    m.receive_advert(0.5, advert(100), PEER)
    assert m.actions() == [MasterRxLowerPri(PEER, 100)]


def test_lower_prio_garp_second_round() -> None:
    m = VrrpMachine(make(priority=255, garp_master_delay=0, garp_lower_prio_delay=2))
    m.start(0.0)
    m.actions()
    m.receive_advert(0.5, advert(100), PEER)
    assert [type(a) for a in m.actions()] == [SendAdvert, SendGratuitous, MasterRxLowerPri]
    assert m.get_timer() == 1.5
    m.handle_timer(1.5)
    m.handle_timer(2.5)
    assert [type(a) for a in m.actions()] == [SendAdvert, SendAdvert, SendGratuitous]


def test_leaving_master_cancels_pending_garp() -> None:
    m = VrrpMachine(make(priority=200, start_state=State.MASTER, garp_master_delay=5))
    m.start(0.0)
    m.handle_timer(m.get_timer() or 0.0)
    m.actions()
    assert m.state is State.MASTER
    m.receive_advert(2.0, advert(250), PEER)
    assert m.state is State.BACKUP
    assert m.get_timer() == pytest.approx(2.0 + master_down_interval(2, 200, 100))


def test_v3_master_learns_interval_when_yielding() -> None:
    m = VrrpMachine(make(version=3, priority=100, start_state=State.MASTER))
    m.start(0.0)
    m.handle_timer(m.get_timer() or 0.0)
    assert m.state is State.MASTER
    m.receive_advert(2.0, advert(200, interval_cs=20, version=3), PEER)
    assert m.state is State.BACKUP and m.master_adver_int_cs == 20
    assert m.master_down_interval == pytest.approx(master_down_interval(3, 100, 20))


def test_startup_delay_holds_backup_timers_until_it_has_passed() -> None:
    """keepalived vrrp_startup_delay: the instance is BACKUP at once, but its down timer
    counts from the end of the delay, whatever adverts arrive meanwhile."""
    m = VrrpMachine(make(priority=100, startup_delay=5.0))
    m.start(0.0)
    assert m.state is State.BACKUP
    assert m.get_timer() == pytest.approx(5.0 + m.master_down_interval)
    m.receive_advert(1.0, advert(200), PEER)
    assert m.get_timer() == pytest.approx(5.0 + m.master_down_interval)
    m.receive_advert(6.0, advert(200), PEER)  # past the delay: from now, as usual
    assert m.get_timer() == pytest.approx(6.0 + m.master_down_interval)


def test_startup_delay_holds_the_owner_and_a_reload_start_skips_it() -> None:
    owner = VrrpMachine(make(priority=255, startup_delay=2.0))
    owner.start(0.0)
    assert owner.state is State.BACKUP and owner.get_timer() == 2.0
    owner.handle_timer(2.0)
    assert owner.state is State.MASTER
    added = VrrpMachine(make(priority=255, startup_delay=2.0))
    added.start(10.0, delay=0.0)
    assert added.state is State.MASTER
