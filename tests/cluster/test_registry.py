"""The registry against a real single-member etcd on loopback (started per test)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from tests.cluster.conftest import EtcdServer

from hagate.cluster.etcd import Etcd
from hagate.cluster.registry import EtcdState, Registry, Superseded
from hagate.cluster.routes import node_key
from hagate.tunnel.wire import ServiceKind, ServiceSpec

WEB = (ServiceSpec("http", ServiceKind.HTTP),)
TTL = 2


def make(server: EtcdServer, node: str, out: list[Superseded] | None = None) -> Registry:
    sink = out.append if out is not None else None
    return Registry(Etcd([server.endpoint], 1.0), node, f"127.0.0.1:{7000 + len(node)}", TTL, sink)


async def until(pred: Callable[[], object], timeout: float = 5.0, what: str = "") -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def test_a_device_published_on_a_routes_there_from_b(etcd: EtcdServer) -> None:
    async def main() -> None:
        a, b = make(etcd, "a"), make(etcd, "b")
        a.start()
        b.start()
        try:
            a.publish("dev1", "s1", WEB)
            await until(lambda: b.route("dev1") is not None, what="b sees dev1")
            rec = b.route("dev1")
            assert rec is not None and (rec.node, rec.sid) == ("a", "s1")
            assert rec.service(None) == WEB[0]
            assert b.peer_of("a") == a.peer
            assert a.route("dev1") is None  # local to a
            a.unpublish("dev1", "other-sid")  # not ours: ignored
            await asyncio.sleep(0.1)
            assert b.route("dev1") is not None
            a.unpublish("dev1", "s1")
            await until(lambda: b.route("dev1") is None, what="dev1 gone")
            assert a.health()["etcd"] == "up"
        finally:
            await a.stop()
            await b.stop()

    run(main)


def test_a_crashed_nodes_records_expire_together_a_stopped_ones_at_once(
    etcd: EtcdServer,
) -> None:
    async def main() -> None:
        a, b, c = make(etcd, "a"), make(etcd, "b"), make(etcd, "c")
        for r in (a, b, c):
            r.start()
        try:
            for i in range(50):
                a.publish(f"dev{i}", f"s{i}", WEB)
            c.publish("cdev", "sc", WEB)
            await until(lambda: len(b.table.records) == 51, what="51 records")
            await a.stop(graceful=False)  # a crash: keep-alives stop, the lease runs out
            gone = await until(lambda: len(b.table.records) == 1, TTL + 3, "a's records gone")
            assert 0.5 < gone < TTL + 2
            assert "a" not in b.table.nodes and b.route("cdev") is not None
            await c.stop(graceful=True)  # lease revoked: at once
            fast = await until(lambda: not b.table.records, 2.0, "c's records gone")
            assert fast < 1.0
        finally:
            await b.stop()

    run(main)


def test_two_sessions_of_one_device_resolve_to_the_newest(etcd: EtcdServer) -> None:
    async def main() -> None:
        sa: list[Superseded] = []
        sb: list[Superseded] = []
        a, b = make(etcd, "a", sa), make(etcd, "b", sb)
        a.start()
        b.start()
        try:
            a.publish("dev1", "old", WEB)
            assert await a.wait_synced(5)
            await until(lambda: b.route("dev1") is not None, what="b sees a's session")
            b.publish("dev1", "new", WEB)  # the device reconnected to b
            await until(lambda: sa, what="a told it was superseded")
            assert sa[0].device == "dev1" and sa[0].sid == "old" and sa[0].by.node == "b"
            assert not sb
            await until(lambda: "a" not in a.table.records.get("dev1", {}), what="a's key gone")
            assert a.route("dev1") is not None and a.route("dev1").node == "b"  # type: ignore[union-attr]
            assert "dev1" not in a.local
            # and back again: the newest write wins, never a clock
            a.publish("dev1", "newer", WEB)
            await until(lambda: sb, what="b told it was superseded")
            assert sb[0].by.node == "a" and sb[0].by.sid == "newer"
        finally:
            await a.stop()
            await b.stop()

    run(main)


def test_etcd_down_keeps_local_state_says_so_and_catches_up(etcd: EtcdServer) -> None:
    async def main() -> None:
        a, b = make(etcd, "a"), make(etcd, "b")
        a.start()
        b.start()
        try:
            a.publish("dev1", "s1", WEB)
            await until(lambda: b.route("dev1") is not None, what="dev1 at b")
            etcd.kill()
            await until(lambda: a.state is EtcdState.DOWN, 5, "a sees etcd down")
            h = a.health()
            assert h["etcd"] == "down" and h["etcd_error"] and h["local_devices"] == 1
            assert b.route("dev1") is not None  # last seen routes are kept
            a.publish("dev2", "s2", WEB)  # attaches go on while etcd is down
            a.unpublish("dev1", "s1")
            assert a.health()["unwritten"] == 2
            etcd.start()
            await until(lambda: a.state is EtcdState.UP and b.state is EtcdState.UP, 10, "up")
            await until(lambda: b.route("dev2") is not None, 5, "dev2 published after return")
            await until(lambda: b.route("dev1") is None, 5, "dev1 removed after return")
            assert a.health()["outages"] == 1 and a.health()["unwritten"] == 0
        finally:
            await a.stop()
            await b.stop()

    run(main)


def test_after_its_lease_expired_a_node_does_not_steal_a_newer_session(etcd: EtcdServer) -> None:
    """A cut off from etcd past its lease; the device re-attached at B meanwhile: on return,
    A's session is the older one (by the revision of A's put), so A gives way."""
    from tests.gateway.kit import Relay, free_port

    async def main() -> None:
        relay = await Relay(etcd.endpoint[1]).start()
        sa: list[Superseded] = []
        a = Registry(Etcd([("127.0.0.1", relay.port)], 0.5), "a", "127.0.0.1:7001", TTL, sa.append)
        b = make(etcd, "b")
        a.start()
        b.start()
        try:
            a.publish("dev1", "old", WEB)
            await until(lambda: b.route("dev1") is not None, what="b sees a's session")
            relay.move(free_port())  # a's etcd connections hang, new ones are refused
            await until(lambda: a.state is EtcdState.DOWN, 5, "a cut off")
            await until(lambda: b.route("dev1") is None, TTL + 3, "a's lease expired")
            b.publish("dev1", "new", WEB)
            assert await b.wait_synced(5)
            relay.target = etcd.endpoint[1]  # healed
            await until(lambda: sa, 10, "a told its session is the older one")
            assert sa[0].by.node == "b" and "dev1" not in a.local
            await asyncio.sleep(0.3)
            rec = b.table.winner("dev1")
            assert rec is not None and rec.node == "b" and "a" not in b.table.records["dev1"]
        finally:
            await a.stop()
            await b.stop()
            relay.close()

    run(main)


def test_a_starved_event_loop_keeps_its_lease(etcd: EtcdServer) -> None:
    """The loop is held (a busy Python loop holding the GIL, like a handshake storm's CPU) for
    1.5 lease TTLs, 4.5 keep-alive intervals: the lease lives (its keep-alives run in their own
    thread), while a lease refreshed from that loop, as before, expires."""
    from hagate.cluster.etcd import EtcdError

    async def refresh_on_the_loop(client: Etcd, lease: int) -> None:
        while True:
            await asyncio.sleep(TTL / 3)
            with contextlib.suppress(EtcdError):
                await client.keepalive(lease)

    async def main() -> None:
        a = make(etcd, "a")
        a.start()
        check = Etcd([etcd.endpoint], 1.0)
        try:
            a.publish("dev1", "s1", WEB)
            assert await a.wait_synced(5)
            lease = a.lease
            control = await check.grant(TTL)
            await check.put(b"/control/on-the-loop", b"x", control)
            task = asyncio.create_task(refresh_on_the_loop(check, control))
            await asyncio.sleep(0.1)
            end = time.monotonic() + 1.5 * TTL
            while time.monotonic() < end:  # starve the loop (and fight for the GIL)
                pass
            kvs, _ = await check.get_prefix(b"/")
            leases = {kv.key: kv.lease for kv in kvs}
            assert leases.get(node_key("a")) == lease, leases  # the node's record lives
            assert b"/control/on-the-loop" not in leases  # the loop-refreshed lease expired
            task.cancel()
            await asyncio.sleep(0.5)
            assert a.state is EtcdState.UP and a.lease == lease and a.outages == 0
            done, failed = a.keepalives
            assert done >= 4 and failed == 0, (done, failed)
            assert a.health()["lease_keepalives"] == done
        finally:
            await a.stop()
            await check.close()

    run(main)
