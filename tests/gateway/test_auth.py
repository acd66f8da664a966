"""Unauthenticated or revoked agents are refused before any route exists."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from hagate.pki.ca import Role, init_ca, issue, revoke

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    client_config,
    free_port,
    gateway_config,
    http_get,
    http_service,
    running_agent,
    running_gateway,
)


def test_revoked_certificate_refused_and_session_closed(fresh_pki: Pki) -> None:
    async def main() -> None:
        web, web_port = await http_service("dev1")
        async with running_gateway(gateway_config(fresh_pki)) as gw:
            acfg = agent_config(fresh_pki, "dev1", gw.addresses["tunnel"][1], http=web_port)
            async with running_agent(acfg) as agent:
                revoke(fresh_pki.dir, "dev1")  # the gateway re-reads crl.pem when it changes
                t0 = time.monotonic()
                while agent.connected.is_set() or "dev1" in gw.sessions:
                    assert time.monotonic() - t0 < 3, "revocation not applied"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # let it try again: refused every time
                assert not agent.connected.is_set()
                assert "revoked" in agent.last_error
                assert gw.metrics.auth_failures["revoked"] >= 1
                status, _ = await http_get(gw.addresses["http"][1], f"dev1.{DOMAIN}")
                assert status == 404
        web.close()

    asyncio.run(main())


def test_revoked_at_start(fresh_pki: Pki) -> None:
    revoke(fresh_pki.dir, "alice", Role.USER)

    async def main() -> None:
        async with running_gateway(gateway_config(fresh_pki)) as gw:
            assert gw.revoked
            from hagate.agent.connect import ConnectError, open_stream
            from hagate.net.tls import client_context

            user = client_config(fresh_pki, "user", "alice", gw.addresses["tunnel"][1])
            ctx = client_context(user.cert, user.key, user.ca)
            try:
                await open_stream(user, ctx, "dev1", "ssh")
                raise AssertionError("revoked user got through")
            except ConnectError as exc:
                assert "revoked" in str(exc)

    asyncio.run(main())


def test_foreign_ca_refused(fresh_pki: Pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other"
    init_ca(other)
    issue(other, Role.DEVICE, "dev1")
    b = other / "issued" / "device" / "dev1"

    async def main() -> None:
        async with running_gateway(gateway_config(fresh_pki)) as gw:
            tport = gw.addresses["tunnel"][1]
            acfg = agent_config(fresh_pki, "dev1", tport, http=free_port())
            # The device trusts our gateway but presents a certificate of another CA.
            client = replace(
                client_config(fresh_pki, "device", "dev1", tport),
                cert=b / "cert.pem",
                key=b / "key.pem",
            )
            async with running_agent(replace(acfg, client=client), wait=False) as agent:
                await asyncio.sleep(0.6)
                assert not agent.connected.is_set()
            assert not gw.sessions
            assert sum(gw.metrics.auth_failures.values()) >= 1
            assert "hagate_auth_failures_total{reason=" in gw.render_metrics()

    asyncio.run(main())


def test_agent_refuses_gateway_of_another_ca(fresh_pki: Pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other"
    init_ca(other)
    issue(other, Role.SERVER, "gateway", dns=["localhost"], ips=["127.0.0.1"])
    srv = other / "issued" / "server" / "gateway"

    async def main() -> None:
        cfg = replace(
            gateway_config(fresh_pki),
            cert=srv / "cert.pem",
            key=srv / "key.pem",
        )
        async with running_gateway(cfg) as gw:
            acfg = agent_config(fresh_pki, "dev1", gw.addresses["tunnel"][1], http=free_port())
            async with running_agent(acfg, wait=False) as agent:
                await asyncio.sleep(0.5)
                assert not agent.connected.is_set()
                assert "CERTIFICATE_VERIFY_FAILED" in agent.last_error
            assert not gw.sessions

    asyncio.run(main())


def test_handshake_flood_from_one_address_is_bounded(fresh_pki: Pki) -> None:
    async def main() -> None:
        cfg = gateway_config(fresh_pki, handshake_timeout=1.0, handshakes_per_address=64)
        async with running_gateway(cfg) as gw:
            tport = gw.addresses["tunnel"][1]
            # Connections that never start a TLS handshake (slowloris on the tunnel port).
            idle = [await asyncio.open_connection("127.0.0.1", tport) for _ in range(64 + 20)]
            await asyncio.sleep(0.3)
            assert gw.metrics.auth_failures["busy"] >= 20
            assert len(gw.admission.inflight) <= 64
            await asyncio.sleep(1.2)  # their handshake time is up: the slots are free again
            assert len(gw.admission.inflight) == 0
            acfg = agent_config(fresh_pki, "dev1", tport, http=free_port())
            async with running_agent(acfg) as agent:
                assert agent.connected.is_set()
            for _, w in idle:
                w.close()

    asyncio.run(main())


def test_handshake_flood_from_many_addresses_evicts_the_oldest(fresh_pki: Pki) -> None:
    """Issue 11: ten flooding addresses filled every slot and a real handshake took 8 s.

    Now the global budget evicts the oldest incomplete handshake: the flood holds its slots
    only until newer connections arrive, and a fresh agent gets through at once.
    """

    async def main() -> None:
        cfg = gateway_config(
            fresh_pki, handshake_timeout=30.0, max_handshakes=100, handshakes_per_address=100
        )
        async with running_gateway(cfg) as gw:
            tport = gw.addresses["tunnel"][1]
            idle = []
            for i in range(10):  # ten addresses of the loopback range, 15 half-open each
                for _ in range(15):
                    _r, w = await asyncio.open_connection(
                        "127.0.0.1", tport, local_addr=(f"127.0.0.{10 + i}", 0)
                    )
                    w.write(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
                    idle.append(w)
            await asyncio.sleep(0.3)
            assert len(gw.admission.inflight) == 100
            assert gw.admission.evicted >= 50
            t0 = time.monotonic()
            acfg = agent_config(fresh_pki, "dev1", tport, http=free_port())
            async with running_agent(acfg) as agent:
                assert agent.connected.is_set()
            assert time.monotonic() - t0 < 2.0
            for w in idle:
                w.close()

    asyncio.run(main())
