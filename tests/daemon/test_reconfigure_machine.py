"""VrrpMachine.reconfigure: a reload applied in place keeps the state (the daemon's reload
relies on it; the lab cases are in test_lab_reload.py)."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_address

import pytest

from hagate.vrrp.actions import AddVips, PriorityChanged, RemoveVips, SendAdvert, SendGratuitous
from hagate.vrrp.advert import Advert, AuthType
from hagate.vrrp.machine import MachineError, VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem

ME, PEER = ip_address("10.0.0.1"), ip_address("10.0.0.2")
V1, V2 = ip_address("10.0.0.100"), ip_address("10.0.0.101")


def params(**kw: object) -> VrrpParams:
    base: dict[str, object] = {"vrid": 51, "primary_address": ME, "vips": (V1,), "priority": 100}
    base.update(kw)
    return VrrpParams(**base)  # type: ignore[arg-type]


def master(p: VrrpParams) -> VrrpMachine:
    m = VrrpMachine(p)
    m.start(0.0)
    m.handle_timer(10.0)  # no master heard: MASTER
    assert m.state is State.MASTER
    m.actions()
    return m


def advert(priority: int, advert_int_cs: int = 100) -> Advert:
    return Advert(2, 51, priority, advert_int_cs, (V1,), AuthType.NONE, b"")


def test_master_adds_and_removes_vips_in_place() -> None:
    m = master(params())
    m.reconfigure(11.0, params(vips=(V2,)))
    acts = m.actions()
    assert m.state is State.MASTER
    assert RemoveVips((V1,)) in acts and AddVips((V2,)) in acts
    assert any(isinstance(a, SendGratuitous) and a.addresses == (V2,) for a in acts)
    sent = [a for a in acts if isinstance(a, SendAdvert)]
    assert sent and sent[0].advert.addresses == (V2,)  # announced at once


def test_master_priority_and_interval_change_keeps_master() -> None:
    m = master(params())
    m.reconfigure(11.0, params(priority=150, advert_int=2))
    acts = m.actions()
    assert m.state is State.MASTER
    assert PriorityChanged(100, 150, "reload: priority 100 -> 150") in acts
    assert m.get_timer() == pytest.approx(13.0)
    assert not [a for a in acts if isinstance(a, AddVips | RemoveVips)]


def test_unchanged_master_sends_nothing_extra() -> None:
    m = master(params())
    m.reconfigure(11.0, params())
    assert m.actions() == [] and m.state is State.MASTER


def test_backup_keeps_its_master_and_retimes_the_down_timer() -> None:
    m = VrrpMachine(params(priority=100))
    m.start(0.0)
    m.receive_advert(1.0, advert(200), PEER)
    m.actions()
    m.reconfigure(1.5, params(priority=150, vips=(V1, V2)))
    assert m.state is State.BACKUP and m.master_address == PEER
    assert m.get_timer() == pytest.approx(1.0 + m.master_down_interval)
    assert all(not isinstance(a, AddVips | SendAdvert) for a in m.actions())


def test_new_down_weight_zero_item_faults_and_removing_it_recovers() -> None:
    m = master(params())
    item = TrackedItem("script chk", 0, initially_ok=False)
    m.reconfigure(11.0, params(tracked=(item,)))
    assert m.state is State.FAULT
    m.reconfigure(12.0, params())
    assert m.state is State.BACKUP


def test_tracked_items_that_stay_keep_their_status() -> None:
    item = TrackedItem("script chk", -30)
    m = master(params(tracked=(item,)))
    m.set_tracked(11.0, "script chk", False)
    assert m.effective_priority == 70
    m.reconfigure(12.0, params(tracked=(item,), priority=120))
    assert m.effective_priority == 90 and m.state is State.MASTER


def test_vrid_version_family_cannot_change_in_place() -> None:
    m = master(params())
    for p in (params(vrid=52), params(version=3, advert_int=1)):
        with pytest.raises(MachineError):
            m.reconfigure(11.0, p)
    six = dataclasses.replace(
        params(), primary_address=ip_address("fe80::1"), vips=(ip_address("fd00::1"),), version=3
    )
    with pytest.raises(MachineError):
        m.reconfigure(11.0, six)
