"""Three gateways of one cluster on loopback with a real etcd: any node serves any device
(HTTP, TCP inventory ports, `hagate connect`), newest session wins, moves leave no old route."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import statistics
import time
import urllib.request
from pathlib import Path

import pytest
from tests.cluster.conftest import EtcdServer
from tests.cluster.kit import DEVICES, Cluster, cluster_pki, running_cluster, until
from tests.gateway.kit import (
    DOMAIN,
    agent_config,
    client_config,
    echo_service,
    http_get,
    http_service,
    running_agent,
)

from hagate.agent.connect import open_stream
from hagate.cluster.registry import Registry
from hagate.net.tls import client_context


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def routes_everywhere(cl: Cluster, device: str, node: str) -> None:
    """Until every other node routes ``device`` to ``node``."""
    for name, gw in cl.gateways.items():
        if name != node:
            assert gw.cluster is not None
            reg = gw.cluster.registry

            def there(reg: Registry = reg) -> bool:
                r = reg.route(device)
                return r is not None and r.node == node

            await until(there, 5, f"{name} routes {device} to {node}")


async def https_get(cl: Cluster, i: int, device: str) -> bytes:
    ctx = ssl.create_default_context(cafile=str(cl.pki.dir / "ca.crt"))
    host = f"{device}.{DOMAIN}"
    r, w = await asyncio.open_connection(
        "127.0.0.1", cl.gw(i).addresses["https"][1], ssl=ctx, server_hostname=host
    )
    try:
        w.write(f"GET /s HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), 5)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        return data.split(b"\r\n\r\n", 1)[1]
    finally:
        w.close()


async def scrape_text(cl: Cluster, i: int) -> str:
    host, port = cl.gw(i).addresses["admin"]
    url = f"http://{host}:{port}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())

    return await asyncio.to_thread(get)


async def scrape(cl: Cluster, i: int) -> dict[str, float]:
    """/metrics of node i: sample (name with labels) -> value."""
    out = {}
    for line in (await scrape_text(cl, i)).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def connect_echo(cl: Cluster, i: int, device: str, payload: bytes) -> bytes:
    client = client_config(cl.pki, "user", "alice", cl.tunnel_port(i))
    ctx = client_context(client.cert, client.key, client.ca)
    conn = await open_stream(client, ctx, device, "ssh")
    try:
        conn.write(payload)
        out = bytes(conn.rbuf)
        conn.rbuf.clear()
        while len(out) < len(payload):
            out += await asyncio.wait_for(conn.recv_some(), 5)
        return out
    finally:
        conn.close()


def test_a_user_on_each_node_reaches_a_device_on_each_node(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    pki = cluster_pki(tmp_path / "pki", 3)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack, running_cluster(pki, etcd.endpoint) as cl:
            echo, echo_port = await echo_service()
            stack.callback(echo.close)
            for i, device in enumerate(DEVICES, 1):
                web, web_port = await http_service(device)
                stack.callback(web.close)
                cfg = agent_config(pki, device, cl.tunnel_port(i), http=web_port, tcp=echo_port)
                await stack.enter_async_context(running_agent(cfg))
                await routes_everywhere(cl, device, f"n{i}")
            for i in (1, 2, 3):
                for device in DEVICES:
                    status, body = await http_get(cl.http_port(i), f"{device}.{DOMAIN}", "/x")
                    assert (status, body) == (200, f"hello from {device} /x".encode()), (i, device)
                    port = cl.pinned[f"{device}/ssh"]
                    r, w = await asyncio.open_connection(f"127.0.0.{i}", port)
                    w.write(b"ping %d" % i)
                    assert await asyncio.wait_for(r.readexactly(6), 5) == b"ping %d" % i
                    w.close()
                    payload = f"{device} via n{i}".encode()
                    assert await connect_echo(cl, i, device, payload) == payload
                    assert await https_get(cl, i, device) == f"hello from {device} /s".encode()
            # An unknown device is a 404 from every node, and the entry node alone decides.
            status, _ = await http_get(cl.http_port(1), f"dev4.{DOMAIN}")
            assert status == 404
            n1 = cl.gw(1).cluster
            n2 = cl.gw(2).cluster
            assert n1 is not None and n2 is not None
            assert n1.client.counts["opened"] >= 4 and n2.server.counts["served"] >= 4
            health = cl.gw(1).health()["cluster"]
            assert isinstance(health, dict) and health["etcd"] == "up"
            assert health["devices_per_node"] == {"n1": 1, "n2": 1, "n3": 1}
            # The same figures in /metrics, scraped from the admin listener.
            m1, m2 = await scrape(cl, 1), await scrape(cl, 2)
            assert m1["hagate_cluster_etcd_up"] == 1 and m1["hagate_cluster_nodes"] == 3
            assert m1["hagate_cluster_registry_writes_total"] >= 1
            assert m1["hagate_cluster_registry_transactions_total"] >= 1
            assert m1['hagate_cluster_devices{node="n2"}'] == 1
            assert m1["hagate_cluster_routes_known"] == 2  # dev2 at n2, dev3 at n3
            assert (
                m1['hagate_cluster_peer_hops_total{direction="out"}'] == n1.client.counts["opened"]
            )
            assert m2['hagate_cluster_peer_hops_total{direction="in"}'] >= 4
            assert (
                m1['hagate_cluster_peer_streams_failed_total{direction="out",reason="refused"}']
                == 0
            )
            assert m1['hagate_cluster_peer_connections_total{kind="dialed"}'] >= 2
            assert m1["hagate_cluster_registry_unwritten"] == 0
            assert "hagate_agents_connected 1" in await scrape_text(cl, 1)  # the gateway's own

    run(main())


def test_peer_hop_latency_and_a_move_leaves_no_route_at_the_old_node(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    pki = cluster_pki(tmp_path / "pki", 3)

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack, running_cluster(pki, etcd.endpoint) as cl:
            old, old_port = await http_service("dev1-at-n1")
            new, new_port = await http_service("dev1-at-n2")
            stack.callback(old.close)
            stack.callback(new.close)
            async with running_agent(agent_config(pki, "dev1", cl.tunnel_port(1), http=old_port)):
                await routes_everywhere(cl, "dev1", "n1")
                host = f"dev1.{DOMAIN}"
                direct, hop = [], []
                for _ in range(20):  # interleaved, so both see the same load
                    t0 = time.perf_counter()
                    assert (await http_get(cl.http_port(1), host))[0] == 200
                    t1 = time.perf_counter()
                    assert (await http_get(cl.http_port(2), host))[0] == 200
                    hop.append(time.perf_counter() - t1)
                    direct.append(t1 - t0)
                d, h = statistics.median(direct), statistics.median(hop)
                print(
                    f"\nnew connection per request: direct {d * 1e3:.2f} ms, "
                    f"through a peer {h * 1e3:.2f} ms (+{(h - d) * 1e3:.2f} ms)"
                )
                assert h < d + 0.25
            # The device moves to n2: once its new session is up, no node reaches the old one.
            async with running_agent(agent_config(pki, "dev1", cl.tunnel_port(2), http=new_port)):
                await routes_everywhere(cl, "dev1", "n2")
                for i in (1, 2, 3):
                    status, body = await http_get(cl.http_port(i), "dev1." + DOMAIN, "/m")
                    assert (status, body) == (200, b"hello from dev1-at-n2 /m")
                assert "dev1" not in cl.gw(1).sessions

    run(main())


def test_two_sessions_of_one_device_on_two_nodes_resolve_to_the_newest(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    pki = cluster_pki(tmp_path / "pki", 2)

    async def main() -> None:
        async with (
            contextlib.AsyncExitStack() as stack,
            running_cluster(pki, etcd.endpoint, nodes=2) as cl,
        ):
            a, a_port = await http_service("twin-a")
            b, b_port = await http_service("twin-b")
            stack.callback(a.close)
            stack.callback(b.close)
            first = await stack.enter_async_context(
                running_agent(agent_config(pki, "dev1", cl.tunnel_port(1), http=a_port))
            )
            await routes_everywhere(cl, "dev1", "n1")
            await stack.enter_async_context(
                running_agent(agent_config(pki, "dev1", cl.tunnel_port(2), http=b_port))
            )
            await until(lambda: first.superseded >= 1, 5, "n1's session superseded")
            await until(lambda: "dev1" not in cl.gw(1).sessions, 5, "n1 dropped its session")
            for i in (1, 2):
                status, body = await http_get(cl.http_port(i), "dev1." + DOMAIN)
                assert (status, body) == (200, b"hello from twin-b /"), i

    run(main())


def test_a_peer_without_a_node_certificate_is_refused(tmp_path: Path, etcd: EtcdServer) -> None:
    pki = cluster_pki(tmp_path / "pki", 1)

    async def main() -> None:
        async with running_cluster(pki, etcd.endpoint, nodes=1) as cl:
            gw = cl.gw(1)
            assert gw.cluster is not None
            host, port = gw.addresses["peer"]
            user = client_config(pki, "user", "alice", port)
            ctx = client_context(user.cert, user.key, user.ca)
            from hagate.cluster.peer import PeerClient
            from hagate.net.backend import KERNEL

            errors: list[str] = []
            pc = PeerClient("alice", ctx, KERNEL, errors.append, spares=0)
            try:
                await pc.open("n1", f"{host}:{port}", "dev1", None, None, 2.0)
            except Exception as exc:
                assert getattr(exc, "code", None) in (502, 504)
            else:
                raise AssertionError("a user certificate opened a peer stream")
            assert gw.cluster.server.counts["not_a_node"] == 1

    run(main())


def test_spare_peer_connections_are_used_and_a_dead_one_is_replaced(
    tmp_path: Path, etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hagate.cluster import peer

    monkeypatch.setattr(peer, "SPARE_WAIT", 0.3)  # the serving node drops idle spares fast
    pki = cluster_pki(tmp_path / "pki", 2)

    async def main() -> None:
        async with (
            contextlib.AsyncExitStack() as stack,
            running_cluster(pki, etcd.endpoint, nodes=2) as cl,
        ):
            web, port = await http_service("dev1")
            stack.callback(web.close)
            await stack.enter_async_context(
                running_agent(agent_config(pki, "dev1", cl.tunnel_port(1), http=port))
            )
            await routes_everywhere(cl, "dev1", "n1")
            n2 = cl.gw(2).cluster
            assert n2 is not None
            assert (await http_get(cl.http_port(2), "dev1." + DOMAIN))[0] == 200
            await until(lambda: len(n2.client.pool.get("n1", ())) == 2, 5, "two spares")
            for front in cl.gw(2).fronts:
                front.drop_device("dev1")  # no pooled upstream: the next request needs a peer
            assert (await http_get(cl.http_port(2), "dev1." + DOMAIN))[0] == 200
            assert n2.client.counts["spare_used"] == 1
            await asyncio.sleep(0.6)  # n1 has closed the idle spares by now
            for front in cl.gw(2).fronts:
                front.drop_device("dev1")
            assert (await http_get(cl.http_port(2), "dev1." + DOMAIN))[0] == 200
            assert n2.client.counts["spare_dead"] == 1

    run(main())


def test_a_revoked_node_is_neither_dialled_nor_served(tmp_path: Path, etcd: EtcdServer) -> None:
    from hagate.pki.ca import Role, revoke

    pki = cluster_pki(tmp_path / "pki", 2)

    async def main() -> None:
        async with (
            contextlib.AsyncExitStack() as stack,
            running_cluster(pki, etcd.endpoint, nodes=2) as cl,
        ):
            web, port = await http_service("dev1")
            stack.callback(web.close)
            await stack.enter_async_context(
                running_agent(agent_config(pki, "dev1", cl.tunnel_port(1), http=port))
            )
            await routes_everywhere(cl, "dev1", "n1")
            assert (await http_get(cl.http_port(2), "dev1." + DOMAIN))[0] == 200
            serial = revoke(pki.dir, "n1", Role.NODE)
            await until(lambda: serial in cl.gw(2).revoked, 10, "n2 loaded the CRL")
            for front in cl.gw(2).fronts:
                front.drop_device("dev1")
            n2 = cl.gw(2).cluster
            assert n2 is not None
            n2.client.forget("n1")
            status, body = await http_get(cl.http_port(2), "dev1." + DOMAIN)
            assert status == 502, body
            assert (await http_get(cl.http_port(1), "dev1." + DOMAIN))[0] == 200  # n1 itself

    run(main())
