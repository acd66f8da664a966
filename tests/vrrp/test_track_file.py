"""A weighted track_file in the core: its number times the weight moves the priority
(keepalived track_file.c), clamped to +-254, and never faults the instance."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address

import pytest

from hagate.vrrp.actions import PriorityChanged
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem, Tracker

ME = IPv4Address("10.0.0.2")
VIP = IPv4Address("10.0.0.100")


def _params(*items: TrackedItem, priority: int = 100) -> VrrpParams:
    return VrrpParams(vrid=1, primary_address=ME, vips=(VIP,), priority=priority, tracked=items)


def test_level_times_weight_with_reverse_and_clamp() -> None:
    f = TrackedItem("file f", 10, scaled=True)
    r = TrackedItem("file r", 10, reverse=True, scaled=True)
    t = Tracker((f, r, TrackedItem("eth0")))
    assert t.adjustment() == 0 and t.level("file f") == 0 and t.level("eth0") is None
    assert t.set_level("file f", 3) and not t.set_level("file f", 3)
    assert t.adjustment() == 30
    t.set_level("file r", 2)
    assert t.adjustment() == 10
    t.set_level("file f", 1000)  # keepalived clamps value x weight to +-254
    assert f.scaled_adjustment(1000) == 254 and f.scaled_adjustment(-1000) == -254
    t.set_level("file f", -4)  # a negative number lowers the priority
    assert t.adjustment() == -60
    assert t.faulted() == ()  # a weighted file never faults
    with pytest.raises(ValueError, match="not a weighted track_file"):
        t.set_level("eth0", 1)


def test_machine_priority_follows_the_number_without_a_fault() -> None:
    m = VrrpMachine(_params(TrackedItem("file f", -5, scaled=True)))
    m.start(0.0)
    m.actions()
    m.set_tracked_level(1.0, "file f", 4)
    assert m.effective_priority == 80 and m.state is State.BACKUP
    assert any(isinstance(a, PriorityChanged) for a in m.actions())
    m.set_tracked_level(2.0, "file f", 4)  # same number: nothing
    assert m.actions() == []
    m.set_tracked_level(3.0, "file f", 0)
    assert m.effective_priority == 100


def test_owner_ignores_the_file_and_reload_keeps_the_level() -> None:
    owner = VrrpMachine(_params(TrackedItem("file f", 10, scaled=True), priority=255))
    owner.set_tracked_level(0.0, "file f", 5)
    assert owner.effective_priority == 255
    m = VrrpMachine(_params(TrackedItem("file f", 10, scaled=True)))
    m.start(0.0)
    m.set_tracked_level(1.0, "file f", 2)
    assert m.effective_priority == 120
    m.reconfigure(2.0, dataclasses.replace(m.params, priority=90))
    assert m.effective_priority == 110 and m.tracker.level("file f") == 2
