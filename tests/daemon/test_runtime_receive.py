"""InstanceRuntime.receive: repeated identical adverts reuse the last verdict, anything else
is checked afresh, malformed ones are counted (no sockets, no namespaces)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

import pytest

from hagate.config import load
from hagate.daemon.plan import plan_instance
from hagate.daemon.runtime import Host, InstanceRuntime
from hagate.vrrp.advert import MULTICAST_V4, Advert
from hagate.vrrp.packet import encode
from hagate.vrrp.state import State

CONF = """
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 7
    priority 100
    advert_int 1
    version 3
    virtual_ipaddress {
        10.1.1.100/24
    }
}
"""
MASTER = IPv4Address("10.1.1.5")


class FakeSock:
    family = 2

    def prepare(self, src: object, dst: object, ttl: object = None) -> None:
        return None


class FakeNotifier:
    def notify(self, *args: object) -> None:
        return None

    def on_action(self, *args: object) -> None:
        return None


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[InstanceRuntime]:
    path = tmp_path / "keepalived.conf"
    path.write_text(CONF)
    config, _ = load(path)
    plan = plan_instance(config, config.vrrp_instances[0], [ip_address("10.1.1.10")])
    loop = asyncio.new_event_loop()
    dummy: Any = None
    host = Host(loop, dummy, dummy, FakeNotifier())  # type: ignore[arg-type]
    runtime = InstanceRuntime(plan, FakeSock(), host, b"\0" * 6)  # type: ignore[arg-type]
    runtime.start()
    yield runtime
    runtime._cancel_timer()
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def advert(priority: int) -> bytes:
    vips = (IPv4Address("10.1.1.100"),)
    return encode(Advert(3, 7, priority, 100, vips), MASTER, MULTICAST_V4)


def test_repeats_reuse_the_verdict_and_changes_are_rechecked(rt: InstanceRuntime) -> None:
    assert rt.machine.state is State.BACKUP
    for _ in range(3):
        rt.receive(MASTER, MULTICAST_V4, 255, advert(200))
    assert rt.adverts_in == 3 and rt.machine.master_priority == 200
    rt.receive(MASTER, MULTICAST_V4, 255, advert(150))
    assert rt.machine.master_priority == 150
    rt.receive(MASTER, MULTICAST_V4, 64, advert(150))  # same octets, wrong TTL
    broken = bytearray(advert(150))
    broken[7] ^= 1
    rt.receive(MASTER, MULTICAST_V4, 255, bytes(broken))
    rt.receive(MASTER, MULTICAST_V4, 255, b"\x31")
    assert dict(rt.discards) == {"bad_ttl": 1, "bad_checksum": 1, "too_short": 1}
    assert rt.adverts_in == 4
    rt.receive(MASTER, MULTICAST_V4, 255, advert(150))
    assert rt.adverts_in == 5


def test_status_carries_history_and_the_masters_last_advert(rt: InstanceRuntime) -> None:
    """The snapshot keeps the last 32 transitions (oldest first) and when, from whom and at
    which priority the master was last heard, in wall-clock seconds."""
    import time

    from hagate.daemon.runtime import HISTORY
    from hagate.vrrp.actions import StateChanged

    before = time.time()
    rt.receive(MASTER, MULTICAST_V4, 255, advert(200))
    snap = rt.snapshot([])
    heard = snap["heard_master"]
    assert isinstance(heard, dict)
    assert heard["from"] == str(MASTER) and heard["priority"] == 200
    assert before - 0.01 <= heard["at"] <= time.time() + 0.01
    other = IPv4Address("10.1.1.99")
    low = encode(Advert(3, 7, 50, 100, (IPv4Address("10.1.1.100"),)), other, MULTICAST_V4)
    rt.receive(other, MULTICAST_V4, 255, low)  # a lower priority: not the master
    assert rt.adverts_in == 2 and not rt.discards
    again = rt.snapshot([])["heard_master"]
    assert isinstance(again, dict) and again["from"] == str(MASTER) and again["priority"] == 200
    history = rt.snapshot([])["history"]  # INITIALIZE -> BACKUP at start
    assert isinstance(history, list) and [h["new"] for h in history] == ["BACKUP"]
    for i in range(HISTORY + 5):  # as drain() records them
        old, new = (State.BACKUP, State.MASTER) if i % 2 == 0 else (State.MASTER, State.BACKUP)
        rt._changed(StateChanged(old, new, f"r{i}"))
    history = rt.snapshot([])["history"]
    assert isinstance(history, list) and len(history) == HISTORY
    assert history[-1]["reason"] == f"r{HISTORY + 4}" and history[0]["reason"] == "r5"
    assert rt.snapshot([])["last_transition"] == history[-1]
