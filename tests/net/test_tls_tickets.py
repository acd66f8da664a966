"""TLS 1.3 resumption across gateway nodes: tickets from keys both nodes derive from the files.

A session from node-1 resumes on node-2 made from the same files, and not with another
cluster's (it falls back to a full handshake that still works); a resumed session still
carries the client's identity, and a revoked or expired client is refused on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
from pathlib import Path

import pytest

from hagate.agent.agent import dial
from hagate.agent.config import ClientConfig
from hagate.gateway.config import Endpoint, GatewayConfig
from hagate.gateway.server import Gateway
from hagate.net import tickets
from hagate.net.backend import MemoryBackend
from hagate.net.conn import Conn
from hagate.net.tls import (
    client_context,
    peer_identity,
    session_expired,
    tunnel_server_context,
)
from hagate.pki.ca import Role, init_ca, issue, revoke
from hagate.tunnel import wire

from .conftest import Pki, run

CLUSTER = "gw.test"


@pytest.fixture(autouse=True)
def shared_tickets_work() -> None:
    """These tests are about resumption: if this machine cannot do it, say why (a skip)."""
    try:
        tickets.self_test()
    except tickets.TicketsUnavailable as exc:
        pytest.skip(f"shared tickets unavailable here: {exc}")


def server(pki: Pki, name: str = "gateway", cluster: str = CLUSTER) -> ssl.SSLContext:
    b = pki.bundle("server", name)
    ctx = tunnel_server_context(b / "cert.pem", b / "key.pem", pki.ca, cluster=cluster)
    assert ctx.hagate_resumption  # type: ignore[attr-defined]
    return ctx


def device(pki: Pki, name: str = "dev1") -> ssl.SSLContext:
    b = pki.bundle("device", name)
    return client_context(b / "cert.pem", b / "key.pem", pki.ca)


def handshake(
    srv: ssl.SSLContext, cli: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A handshake over memory BIOs; (server side, client side), the client's ticket taken."""
    sin, sout, cin, cout = (ssl.MemoryBIO() for _ in range(4))
    s = srv.wrap_bio(sin, sout, server_side=True)
    c = cli.wrap_bio(cin, cout, server_hostname="localhost", session=session)
    done = [False, False]
    for _ in range(6):
        for i, obj in enumerate((c, s)):
            if not done[i]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    obj.do_handshake()
                    done[i] = True
            sin.write(cout.read())
            cin.write(sout.read())
    assert all(done), "handshake did not finish"
    with contextlib.suppress(ssl.SSLWantReadError):
        c.read(1)
    return s, c


# ---------------------------------------------------------------- key derivation


def test_keys_are_the_same_from_the_same_inputs_and_differ_otherwise() -> None:
    k = tickets.derive_key(b"secret", b"ca", "c", 7)
    assert k == tickets.derive_key(b"secret", b"ca", "c", 7)
    assert (len(k.name), len(k.mac), len(k.aes)) == (16, 32, 32)
    others = [
        tickets.derive_key(b"secreT", b"ca", "c", 7),
        tickets.derive_key(b"secret", b"cA", "c", 7),
        tickets.derive_key(b"secret", b"ca", "d", 7),
        tickets.derive_key(b"secret", b"ca", "c", 8),
    ]
    assert all(o.name != k.name and o.aes != k.aes and o.mac != k.mac for o in others)


def test_the_previous_and_next_epoch_are_accepted_not_older() -> None:
    now = [10.5 * tickets.EPOCH_S]
    keys = tickets.TicketKeys(b"s", b"ca", "c", clock=lambda: now[0])
    issued = keys.current()
    assert issued.epoch == 10
    now[0] += tickets.EPOCH_S  # the next epoch: the old key still opens its tickets
    assert keys.find(issued.name) == issued
    assert keys.current().epoch == 11
    now[0] -= 2 * tickets.EPOCH_S  # a node whose clock is behind accepts the newer key
    assert keys.find(tickets.derive_key(b"s", b"ca", "c", 10).name) is not None
    now[0] += 3 * tickets.EPOCH_S  # two epochs on: refused, a full handshake follows
    assert keys.find(issued.name) is None
    assert keys.find(b"\0" * 16) is None


def test_the_secret_is_the_key_not_its_pem_layout(pki: Pki, tmp_path: Path) -> None:
    key = pki.bundle("server", "gateway") / "key.pem"
    relaid = tmp_path / "key.pem"
    relaid.write_text(key.read_text().replace("\n", "\r\n"))
    assert tickets.shared_secret(key) == tickets.shared_secret(relaid)
    with pytest.raises(tickets.TicketsUnavailable, match="cannot read"):
        tickets.shared_secret(tmp_path / "missing.pem")


# ------------------------------------------------------------- across two nodes


def test_a_session_from_node1_resumes_on_node2_with_the_same_files(pki: Pki) -> None:
    node1, node2, cli = server(pki), server(pki), device(pki)
    s1, c1 = handshake(node1, cli)
    assert not s1.session_reused and c1.session is not None
    s2, c2 = handshake(node2, cli, c1.session)
    assert s2.session_reused and c2.session_reused
    ident = peer_identity(s2)  # the identity travels in the ticket
    assert ident is not None and (ident.role, ident.name) == (Role.DEVICE, "dev1")
    assert ident == peer_identity(s1)
    assert not session_expired(s2, 0.0)
    # node-2's fresh ticket takes the agent back to node-1 as well
    s3, _ = handshake(node1, cli, c2.session)
    assert s3.session_reused


def test_another_clusters_files_do_not_resume_and_a_full_handshake_works(
    pki: Pki, tmp_path: Path
) -> None:
    root = tmp_path / "pki"
    shutil.copytree(pki.dir, root)
    other = Pki(root)
    issue(root, Role.SERVER, "other", dns=["localhost"])  # same CA, another gateway key
    cli = device(pki)
    _, c1 = handshake(server(pki), cli)
    for srv in (server(other, "other"), server(pki, cluster="other.example")):
        s, c = handshake(srv, cli, c1.session)
        assert not s.session_reused and not c.session_reused
        assert peer_identity(s) is not None  # verified in full, as without tickets
    # no tickets at all (resumption = false): full handshakes, as before
    b = pki.bundle("server", "gateway")
    plain = tunnel_server_context(b / "cert.pem", b / "key.pem", pki.ca)
    assert not plain.hagate_resumption  # type: ignore[attr-defined]
    s, _ = handshake(plain, cli, c1.session)
    assert not s.session_reused


def test_an_unavailable_binding_falls_back_to_full_handshakes(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise tickets.TicketsUnavailable("libssl lacks a function: test")

    monkeypatch.setattr(tickets, "self_test", broken)
    b = pki.bundle("server", "gateway")
    ctx = tunnel_server_context(b / "cert.pem", b / "key.pem", pki.ca, cluster=CLUSTER)
    assert not ctx.hagate_resumption  # type: ignore[attr-defined]
    assert ctx.options & ssl.OP_NO_TICKET
    assert "resumption across nodes is off (libssl lacks a function: test)" in caplog.text
    s, _ = handshake(ctx, device(pki))
    assert peer_identity(s) is not None


def test_a_resumed_session_of_an_expired_certificate_counts_as_expired(pki: Pki) -> None:
    cli = device(pki)
    _, c1 = handshake(server(pki), cli)
    s, _ = handshake(server(pki), cli, c1.session)
    assert s.session_reused
    not_after = ssl.cert_time_to_seconds(s.getpeercert()["notAfter"])  # type: ignore[arg-type,index]
    assert not session_expired(s, not_after - 1)
    assert session_expired(s, not_after)


# ------------------------------------------------ the gateway: revocation on resume


def gateway_config(pki: Pki, node: str, tmp_path: Path) -> GatewayConfig:
    srv = pki.bundle("server", "gateway")
    return GatewayConfig(
        domain=CLUSTER,
        ca=pki.ca,
        cert=srv / "cert.pem",
        key=srv / "key.pem",
        crl=pki.dir / "crl.pem",
        tunnel=Endpoint("10.1.1.100", 443),
        http=None,
        https=None,
        admin=None,
        https_cert=srv / "cert.pem",
        https_key=srv / "key.pem",
        tcp_host="10.1.1.100",
        node=node,
        access_log=tmp_path / f"{node}.log",
    )


async def first_line(conn: Conn) -> tuple[dict[str, object], ssl.SSLSession | None]:
    """The gateway's answer to a data line, and the newest session (taken before closing)."""
    conn.write(wire.encode(wire.Data("no-such-session")))
    line = await asyncio.wait_for(conn.read_until(b"\n", 4096), 2.0)
    assert isinstance(conn.sock, ssl.SSLSocket)
    session = conn.sock.session
    conn.close()
    return dict(json.loads(line)), session


def test_a_revoked_client_is_refused_on_a_resumed_session(pki: Pki, tmp_path: Path) -> None:
    """node-1 dies, node-2 takes the VIP; after revocation a resumption is refused."""
    root = tmp_path / "pki"
    shutil.copytree(pki.dir, root)
    own = Pki(root)
    dev = own.bundle("device", "dev1")
    client = ClientConfig("10.1.1.100", 443, "localhost", own.ca, dev / "cert.pem", dev / "key.pem")
    ctx = client_context(client.cert, client.key, client.ca)

    async def main() -> None:
        mem = MemoryBackend()
        agent_net = mem.from_source("192.0.2.10")
        node1 = Gateway(gateway_config(own, "node-1", tmp_path), backend=mem)
        await node1.start()
        conn = await dial(client, ctx, None, agent_net)
        assert isinstance(conn.sock, ssl.SSLSocket) and not conn.sock.session_reused
        answer, session = await first_line(conn)  # a known device: stale session, no refusal
        assert answer["code"] == "stale_session"
        await node1.stop()

        node2 = Gateway(gateway_config(own, "node-2", tmp_path), backend=mem)
        await node2.start()
        try:
            conn = await dial(client, ctx, session, agent_net)
            assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.session_reused
            answer, session = await first_line(conn)
            assert answer["code"] == "stale_session"

            revoke(root, "dev1", Role.DEVICE)
            node2.revocation.poll()
            assert node2.revoked
            conn = await dial(client, ctx, session, agent_net)
            assert conn.sock.session_reused  # type: ignore[union-attr]
            answer, _ = await first_line(conn)
            assert answer["code"] == "revoked", answer
            assert node2.metrics.auth_failures["revoked"] == 1
        finally:
            await node2.stop()
            mem.close()

    run(main(), timeout=8.0)


def test_pki_init_for_tickets_uses_the_same_ca(tmp_path: Path) -> None:
    """Two clusters' CAs bind different keys even with the same gateway key bytes."""
    a, b = tmp_path / "a", tmp_path / "b"
    init_ca(a)
    init_ca(b)
    da = tickets.ca_fingerprint_input(a / "ca.crt")
    db = tickets.ca_fingerprint_input(b / "ca.crt")
    assert da != db
    assert tickets.derive_key(b"k", da, CLUSTER, 1) != tickets.derive_key(b"k", db, CLUSTER, 1)


def test_an_agent_resumes_its_session_on_the_node_that_takes_over(pki: Pki, tmp_path: Path) -> None:
    """The agent offers its last session when it redials: node-2 resumes node-1's."""
    from hagate.agent.agent import Agent
    from hagate.agent.config import AgentConfig, Reconnect

    dev = pki.bundle("device", "dev1")
    client = ClientConfig("10.1.1.100", 443, "localhost", pki.ca, dev / "cert.pem", dev / "key.pem")
    cfg = AgentConfig(client, [], Reconnect(fast_retries=3, fast_delay=0.02))

    async def main() -> None:
        mem = MemoryBackend()
        node1 = Gateway(gateway_config(pki, "node-1", tmp_path), backend=mem)
        await node1.start()
        agent = Agent(cfg, backend=mem.from_source("192.0.2.10"))
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 3.0)
            assert node1.tunnel.handshakes == [1, 0]
            await node1.stop()  # the master dies
            node2 = Gateway(gateway_config(pki, "node-2", tmp_path), backend=mem)
            await node2.start()
            try:
                while "dev1" not in node2.sessions:
                    await asyncio.sleep(0.01)
                assert node2.tunnel.handshakes == [0, 1]  # resumed, not a full handshake
            finally:
                await node2.stop()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            mem.close()

    run(main(), timeout=8.0)
