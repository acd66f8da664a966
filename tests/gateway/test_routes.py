"""Enrol, expose http and tcp, reach both; connect; errors are clear, never a hang."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace

import pytest

from hagate.agent.connect import ConnectError, Forwarder, open_stream
from hagate.net.tls import client_context

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    client_config,
    echo_roundtrip,
    echo_service,
    free_port,
    gateway_config,
    http_get,
    http_service,
    running_agent,
    running_gateway,
)


def test_http_and_tcp_routes(pki: Pki) -> None:
    async def main() -> None:
        web, web_port = await http_service("dev1")
        echo, echo_port = await echo_service()
        tcp_port = free_port()
        async with running_gateway(gateway_config(pki, tcp_pinned={"dev1/ssh": tcp_port})) as gw:
            tport = gw.addresses["tunnel"][1]
            cfg = agent_config(pki, "dev1", tport, http=web_port, tcp=echo_port, tcp_port=tcp_port)
            async with running_agent(cfg) as agent:
                assert agent.routes == {"http": f"dev1.{DOMAIN}", "ssh": f"tcp:{tcp_port}"}
                http_port = gw.addresses["http"][1]
                status, body = await http_get(http_port, f"dev1.{DOMAIN}", "/x")
                assert (status, body) == (200, b"hello from dev1 /x")
                status, body = await http_get(http_port, f"DEV1.{DOMAIN}:{http_port}", "/y")
                assert (status, body) == (200, b"hello from dev1 /y")
                payload = bytes(range(256)) * 4000  # 1 MB both ways
                assert await echo_roundtrip(tcp_port, payload) == payload
                text = gw.render_metrics()
                assert "hagate_agents_connected 1" in text
                assert "hagate_streams_total 3" in text
                assert 'hagate_bytes_total{direction="to_device"}' in text
                assert gw.bytes_forwarded()[0] >= len(payload)
        web.close()
        echo.close()

    asyncio.run(main())


def test_keepalive_requests_share_one_upstream(pki: Pki) -> None:
    """Each request is its own stream (routed, authorised, logged); the upstream is reused."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        async with running_gateway(gateway_config(pki)) as gw:
            cfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], http=web_port)
            async with running_agent(cfg):
                r, w = await asyncio.open_connection("127.0.0.1", gw.addresses["http"][1])
                for i in range(5):
                    w.write(f"GET /{i} HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\n\r\n".encode())
                    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                    n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    assert await r.readexactly(n) == f"hello from dev1 /{i}".encode()
                assert gw.metrics.streams_total == 5
                w.close()
        web.close()

    asyncio.run(main())


def test_https_with_sni(pki: Pki) -> None:
    async def main() -> None:
        web, web_port = await http_service("dev2")
        async with running_gateway(gateway_config(pki)) as gw:
            cfg = agent_config(pki, "dev2", gw.addresses["tunnel"][1], http=web_port)
            async with running_agent(cfg):
                ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
                port = gw.addresses["https"][1]
                host = f"dev2.{DOMAIN}"
                r, w = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname=host
                )
                w.write(f"GET /s HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = await asyncio.wait_for(r.read(), 5)
                assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello from dev2 /s")
                w.close()
                # SNI names one device, Host another: 421, not a cross-device request.
                r, w = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname=f"dev1.{DOMAIN}"
                )
                w.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 421")
                w.close()
        web.close()

    asyncio.run(main())


def test_websocket_upgrade_passes_through(pki: Pki) -> None:
    async def main() -> None:
        async def ws(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            head = await r.readuntil(b"\r\n\r\n")
            assert b"upgrade: websocket" in head.lower()
            # RFC 6455 §4.2.2: the answer carries Upgrade and Connection: Upgrade.
            w.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            while data := await r.read(1024):
                w.write(data.upper())
            w.close()

        srv = await asyncio.start_server(ws, "127.0.0.1", 0)
        async with running_gateway(gateway_config(pki)) as gw:
            cfg = agent_config(
                pki, "dev1", gw.addresses["tunnel"][1], http=srv.sockets[0].getsockname()[1]
            )
            async with running_agent(cfg):
                r, w = await asyncio.open_connection("127.0.0.1", gw.addresses["http"][1])
                w.write(
                    f"GET /ws HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\nConnection: Upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n".encode()
                )
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 101")
                for word in (b"frame1", b"frame2"):
                    w.write(word)
                    assert await asyncio.wait_for(r.readexactly(len(word)), 5) == word.upper()
                w.close()
        srv.close()

    asyncio.run(main())


def test_clear_errors_never_hang(pki: Pki) -> None:
    async def main() -> None:
        async with running_gateway(gateway_config(pki, header_bytes=2048)) as gw:
            port = gw.addresses["http"][1]
            dead_port = free_port()  # nothing listens there on the device
            cfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], http=dead_port)
            async with running_agent(cfg):
                status, body = await http_get(port, f"nosuch.{DOMAIN}")
                assert status == 404 and b"not connected" in body
                status, body = await http_get(port, "example.org")
                assert status == 404 and b"unknown host" in body
                status, body = await http_get(port, f"ssh--dev1.{DOMAIN}")
                assert status == 404 and b"no service" in body
                status, body = await http_get(port, f"dev1.{DOMAIN}")
                assert status == 502 and b"dev1" in body  # the device could not connect
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
                assert (await asyncio.wait_for(r.read(), 5)).startswith(b"HTTP/1.1 431")
                w.close()
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"NONSENSE\r\n\r\n")
                assert (await asyncio.wait_for(r.read(), 5)).startswith(b"HTTP/1.1 400")
                w.close()
            assert gw.metrics.stream_failures["offline"] == 1
            assert "hagate_http_responses_total" in gw.render_metrics()

    asyncio.run(main())


def test_connect_by_name_and_port(pki: Pki) -> None:
    async def main() -> None:
        echo, echo_port = await echo_service()
        async with running_gateway(gateway_config(pki)) as gw:
            tport = gw.addresses["tunnel"][1]
            cfg = agent_config(pki, "dev1", tport, tcp=echo_port)
            async with running_agent(cfg):
                user = client_config(pki, "user", "alice", tport)
                fwd = Forwarder(user, "dev1", "ssh")
                fwd.start()
                assert await echo_roundtrip(fwd.address[1], b"via connect") == b"via connect"
                fwd.close()
                ctx = client_context(user.cert, user.key, user.ca)
                conn = await open_stream(user, ctx, "dev1", str(echo_port))  # by device port
                conn.close()
                with pytest.raises(ConnectError, match="not connected"):
                    await open_stream(user, ctx, "dev9", "ssh")
                with pytest.raises(ConnectError, match="no service"):
                    await open_stream(user, ctx, "dev1", "rdp")
        echo.close()

    asyncio.run(main())


ALICE_DEV_ONLY = """
[[rule]]
name = "alice-devs"
who = ["user:alice"]
devices = ["dev*"]
services = ["*"]
routes = ["connect"]

[[rule]]
name = "bob-others"
who = ["user:bob"]
devices = ["other-*"]
services = ["*"]
routes = ["connect"]
"""


def test_user_access_list(pki: Pki) -> None:
    async def main() -> None:
        echo, echo_port = await echo_service()
        cfg = gateway_config(pki, policy=ALICE_DEV_ONLY)
        async with running_gateway(cfg) as gw:
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(pki, "dev1", tport, tcp=echo_port)):
                for name, allowed in (("alice", True), ("bob", False)):
                    user = client_config(pki, "user", name, tport)
                    ctx = client_context(user.cert, user.key, user.ca)
                    if allowed:
                        (await open_stream(user, ctx, "dev1", "ssh")).close()
                    else:
                        with pytest.raises(
                            ConnectError, match="no rule lets user:bob reach dev1/ssh"
                        ):
                            await open_stream(user, ctx, "dev1", "ssh")
            assert gw.metrics.access["dev1", "denied"] == 1
        echo.close()

    asyncio.run(main())


def test_device_cert_cannot_pose_as_gateway_client_without_role(pki: Pki) -> None:
    """A user certificate cannot open an agent session (roles come from the certificate)."""

    async def main() -> None:
        async with running_gateway(gateway_config(pki)) as gw:
            tport = gw.addresses["tunnel"][1]
            cfg = agent_config(pki, "dev1", tport, http=free_port())
            cfg = replace(cfg, client=client_config(pki, "user", "alice", tport))
            async with running_agent(cfg, wait=False) as agent:
                await asyncio.sleep(0.5)
                assert not agent.connected.is_set()
                assert "refused" in agent.last_error
            assert gw.metrics.auth_failures["wrong_role"] >= 1
            assert not gw.sessions

    asyncio.run(main())


def test_half_close_passes_through(pki: Pki) -> None:
    """A client that sends, then shuts its writing side, still gets the whole answer."""

    async def main() -> None:
        echo, echo_port = await echo_service()
        port = free_port()
        async with running_gateway(gateway_config(pki, tcp_pinned={"dev1/ssh": port})) as gw:
            tport = gw.addresses["tunnel"][1]
            cfg = agent_config(pki, "dev1", tport, tcp=echo_port, tcp_port=port)
            async with running_agent(cfg):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"request, then EOF")
                w.write_eof()
                assert await asyncio.wait_for(r.read(), 5) == b"request, then EOF"
                w.close()
                fwd = Forwarder(client_config(pki, "user", "alice", tport), "dev1", "ssh")
                fwd.start()
                fwd_r, fwd_w = await asyncio.open_connection("127.0.0.1", fwd.address[1])
                fwd_w.write(b"over connect")
                fwd_w.write_eof()
                assert await asyncio.wait_for(fwd_r.read(), 5) == b"over connect"
                fwd_w.close()
                fwd.close()
        echo.close()

    asyncio.run(main())
