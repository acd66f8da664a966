"""Issue 10's holes, each tried as a hostile user would: now refused, cut or fenced off.

Every test runs a real gateway and real agents on loopback with a policy file written for it.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from pathlib import Path

import pytest

from hagate.agent.connect import ConnectError, open_stream
from hagate.net.tls import client_context
from hagate.pki.ca import Role, load_ca, revoke
from hagate.policy.passwords import hash_password
from hagate.policy.tokens import issue_token

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    client_config,
    echo_roundtrip,
    echo_service,
    free_port,
    gateway_config,
    http_service,
    make_pki,
    running_agent,
    running_gateway,
)
from .test_stall import firehose

BOB_PASSWORD = "correct horse battery staple"
_BOB_HASH = hash_password(BOB_PASSWORD)


def policy_text(pki: Pki, extra: str = "") -> str:
    """alice (certificate) and bob (password) and carol (token) are ops; dev1's web is theirs."""
    return f"""
[tokens]
ca = "{pki.dir / "ca.crt"}"

[groups]
ops = ["user:alice", "password:bob", "token:carol"]

[passwords]
bob = "{_BOB_HASH}"

[[rule]]
name = "ops-web"
who = ["group:ops"]
devices = ["dev1"]
services = ["*"]
routes = ["http", "https", "connect"]
{extra}
"""


async def request(
    port: int,
    host: str,
    *,
    auth: str | None = None,
    tls: ssl.SSLContext | None = None,
    local: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One GET with Connection: close: (status, lower-cased headers, body)."""
    r, w = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname=host if tls else None, local_addr=(local, 0)
    )
    try:
        lines = ["GET / HTTP/1.1", f"Host: {host}", "Connection: close"]
        if auth:
            lines.append(f"Authorization: {auth}")
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await asyncio.wait_for(r.read(), 5)
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), headers, body


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_for(pki: Pki, name: str, ttl: float = 600) -> str:
    _cert, key = load_ca(pki.dir)
    token, _claims = issue_token(key, name, [], time.time(), ttl)
    return f"Bearer {token}"


def user_tls(pki: Pki, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
    if name is not None:
        b = pki.bundle("user", name)
        ctx.load_cert_chain(b / "cert.pem", b / "key.pem")
    return ctx


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki3"))


def test_device_certificate_cannot_connect_to_another_device(three: Pki) -> None:
    """Hole 1: dev3's certificate reached dev1's sshd through `connect`."""

    async def main() -> None:
        echo, echo_port = await echo_service()
        async with running_gateway(gateway_config(three)) as gw:
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(three, "dev1", tport, tcp=echo_port)):
                dev3 = client_config(three, "device", "dev3", tport)
                ctx = client_context(dev3.cert, dev3.key, dev3.ca)
                with pytest.raises(ConnectError, match="no rule lets device:dev3 reach dev1"):
                    await open_stream(dev3, ctx, "dev1", "ssh")
                alice = client_config(three, "user", "alice", tport)
                ctx = client_context(alice.cert, alice.key, alice.ca)
                (await open_stream(alice, ctx, "dev1", "ssh")).close()  # a user still may
            assert gw.metrics.access["dev1", "denied"] == 1
            denied = [e for e in gw.access.recent if e.result.startswith("denied")]
            assert denied[0].identity == "device:dev3" and denied[0].route == "connect"
        echo.close()

    asyncio.run(main())


def test_squatter_never_gets_another_devices_port(three: Pki) -> None:
    """Hole 2: while dev2 was away, dev3 asked for dev2's port and served users there."""

    async def main() -> None:
        mine, mine_port = await echo_service()
        squat, squat_port = await echo_service()
        port = free_port()
        cfg = gateway_config(three, tcp_pinned={"dev2/ssh": port})
        for _restart in range(2):  # the same before and after a gateway restart
            async with running_gateway(cfg) as gw:
                tport = gw.addresses["tunnel"][1]
                # dev3 asks for dev2's port while dev2 is offline.
                squatter = agent_config(three, "dev3", tport, tcp=squat_port, tcp_port=port)
                async with running_agent(squatter) as agent:
                    assert agent.routes["ssh"] == "connect"
                    assert "inventory" in agent.errors["ssh"]
                    # The port is dev2's: with dev2 offline a user gets nothing, not dev3.
                    r, w = await asyncio.open_connection("127.0.0.1", port)
                    w.write(b"who is there?")
                    assert await asyncio.wait_for(r.read(), 2) == b""
                    w.close()
                    owner = agent_config(three, "dev2", tport, tcp=mine_port)
                    async with running_agent(owner) as dev2:
                        assert dev2.routes["ssh"] == f"tcp:{port}"
                        assert await echo_roundtrip(port, b"dev2 here") == b"dev2 here"
                offline = [e for e in gw.access.recent if e.device == "dev2"]
                assert offline[0].result.startswith("error")
        mine.close()
        squat.close()

    asyncio.run(main())


def test_revoked_user_loses_open_streams_within_a_second(tmp_path: Path) -> None:
    """Hole 3a: a revoked user's ssh session kept going; only new connects were refused."""
    pki = make_pki(tmp_path / "pki", devices=("dev1",))

    async def main() -> None:
        echo, echo_port = await echo_service()
        async with running_gateway(gateway_config(pki)) as gw:
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(pki, "dev1", tport, tcp=echo_port)):
                alice = client_config(pki, "user", "alice", tport)
                conn = await open_stream(
                    alice, client_context(alice.cert, alice.key, alice.ca), "dev1", "ssh"
                )
                conn.write(b"ping")
                assert await asyncio.wait_for(conn.recv_some(), 2) == b"ping"
                revoke(pki.dir, "alice", Role.USER)
                t0 = time.monotonic()
                with pytest.raises((EOFError, OSError)):
                    while True:  # the stream keeps working until the gateway cuts it
                        conn.write(b"x")
                        if not await asyncio.wait_for(conn.recv_some(), 2):
                            raise EOFError
                        await asyncio.sleep(0.02)
                assert time.monotonic() - t0 < 1.0
                conn.close()
            cut = [e for e in gw.access.recent if e.result.startswith("cut")]
            assert cut and "revoked" in cut[0].result and cut[0].identity == "user:alice"
        echo.close()

    asyncio.run(main())


def test_revoked_device_loses_a_download_in_flight(tmp_path: Path) -> None:
    """Hole 3b: a 100 MB download through a revoked device kept going."""
    pki = make_pki(tmp_path / "pki", devices=("dev1",))

    async def main() -> None:
        hose, hose_port = await firehose()
        port = free_port()
        async with running_gateway(gateway_config(pki, tcp_pinned={"dev1/ssh": port})) as gw:
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(pki, "dev1", tport, tcp=hose_port)):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                await asyncio.wait_for(r.readexactly(1 << 20), 5)  # the download runs
                revoke(pki.dir, "dev1", Role.DEVICE)
                t0 = time.monotonic()
                with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                    while True:
                        await asyncio.wait_for(r.readexactly(65536), 2)
                assert time.monotonic() - t0 < 1.0
                w.close()
            assert not gw.sessions
        hose.close()

    asyncio.run(main())


async def upload_service() -> tuple[asyncio.Server, int]:
    """Reads each request's whole body (Content-Length) before it answers, as uploads need."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await r.readexactly(length)
                path = head.split(b" ")[1].decode()
                body = f"hello from dev1 {path}".encode()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_anonymous_trickle_cannot_lock_out_an_authenticated_user(three: Pki) -> None:
    """Hole 4: 260 uploads trickling a byte every 2 s took every slot of a device."""

    async def main() -> None:
        web, web_port = await upload_service()
        extra = """
[[rule]]
name = "dev1-upload-open"
devices = ["dev1"]
services = ["http"]
routes = ["http"]
public = true
"""
        cfg = gateway_config(
            three, policy=policy_text(three, extra), streams_per_device=16, anonymous_share=0.5
        )
        async with running_gateway(cfg) as gw:
            hport = gw.addresses["http"][1]
            async with running_agent(
                agent_config(three, "dev1", gw.addresses["tunnel"][1], http=web_port)
            ):
                trickles = []
                for _ in range(20):  # uploads that never finish
                    r, w = await asyncio.open_connection("127.0.0.1", hport)
                    w.write(
                        f"POST /up HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\nContent-Length: 100000"
                        "\r\n\r\nx".encode()
                    )
                    trickles.append((r, w))
                await asyncio.sleep(0.3)
                assert len(gw.streams) == 8  # anonymous clients hold half the slots at most
                refused = [await asyncio.wait_for(r.read(), 2) for r, _ in trickles[8:]]
                assert all(b" 429 " in head for head in refused)
                status, _, body = await request(
                    hport, f"dev1.{DOMAIN}", auth=basic("bob", BOB_PASSWORD)
                )
                assert (status, body) == (200, b"hello from dev1 /")
                for _, w in trickles:
                    w.close()
        web.close()

    asyncio.run(main())


def test_web_routes_need_credentials(three: Pki) -> None:
    """Hole 5: whoever reached the VIP reached every device's web UI by guessing its name."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        web2, web2_port = await http_service("dev2")
        cfg = gateway_config(three, policy=policy_text(three))
        async with running_gateway(cfg) as gw:
            tport, hport = gw.addresses["tunnel"][1], gw.addresses["http"][1]
            sport = gw.addresses["https"][1]
            async with (
                running_agent(agent_config(three, "dev1", tport, http=web_port)),
                running_agent(agent_config(three, "dev2", tport, http=web2_port)),
            ):
                host1, host2 = f"dev1.{DOMAIN}", f"dev2.{DOMAIN}"
                # Anonymous: 401 with a challenge, never the device's page.
                status, headers, body = await request(hport, host1)
                assert status == 401 and "Basic" in headers["www-authenticate"]
                assert b"hello from" not in body
                # Basic auth: the right password in, a wrong one out.
                ok = await request(hport, host1, auth=basic("bob", BOB_PASSWORD))
                assert ok[0] == 200 and ok[2] == b"hello from dev1 /"
                bad = await request(hport, host1, auth=basic("bob", "wrong"))
                assert bad[0] == 401 and b"hello from" not in bad[2]
                # A token: carol is ops; dave's valid token matches no rule.
                assert (await request(hport, host1, auth=token_for(three, "carol")))[0] == 200
                assert (await request(hport, host1, auth=token_for(three, "dave")))[0] == 403
                # Nobody is allowed dev2's web UI.
                assert (await request(hport, host2, auth=basic("bob", BOB_PASSWORD)))[0] == 403
                # HTTPS: a browser holding alice's certificate gets in without a password.
                https = await request(sport, host1, tls=user_tls(three, "alice"))
                assert https[0] == 200 and https[2] == b"hello from dev1 /"
                assert (await request(sport, host1, tls=user_tls(three, "bob")))[0] == 403
                assert (await request(sport, host1, tls=user_tls(three, None)))[0] == 401
        web.close()
        web2.close()

    asyncio.run(main())


def test_tcp_port_open_only_to_its_allow_list(three: Pki) -> None:
    async def main() -> None:
        echo, echo_port = await echo_service()
        port, closed = free_port(), free_port()
        extra = """
[[rule]]
name = "dev1-ssh-lab"
devices = ["dev1"]
services = ["ssh"]
routes = ["tcp"]
public = true
from = ["127.0.0.1/32"]
"""
        pinned = {"dev1/ssh": port, "dev1/other": closed}
        cfg = gateway_config(three, policy=policy_text(three, extra), tcp_pinned=pinned)
        async with running_gateway(cfg) as gw:
            async with running_agent(
                agent_config(three, "dev1", gw.addresses["tunnel"][1], tcp=echo_port)
            ):
                assert await echo_roundtrip(port, b"from the lab") == b"from the lab"
                r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.9", 0))
                w.write(b"from elsewhere")
                assert await asyncio.wait_for(r.read(), 2) == b""
                w.close()
                with pytest.raises(OSError):  # no public rule: not even listened on
                    await asyncio.open_connection("127.0.0.1", closed)
            assert gw.metrics.access["dev1", "denied"] == 1
        echo.close()

    asyncio.run(main())


def test_bad_policy_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", devices=("dev1",))

    async def main() -> None:
        cfg = gateway_config(pki, policy=policy_text(pki))
        assert cfg.policy is not None
        async with running_gateway(cfg) as gw:
            before = gw.policy
            cfg.policy.write_text(policy_text(pki) + "\n[[rule]]\nname = 'x'\nroutes = ['ftp']\n")
            await asyncio.sleep(1.2)
            assert gw.policy is before  # kept
            cfg.policy.write_text(policy_text(pki).replace('"dev1"', '"dev*"'))
            await asyncio.sleep(1.2)
            assert gw.policy is not before  # a good one is taken

    asyncio.run(main())
