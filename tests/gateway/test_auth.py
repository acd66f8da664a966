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
    from hagate.gateway import server

    async def main() -> None:
        async with running_gateway(gateway_config(fresh_pki, handshake_timeout=1.0)) as gw:
            tport = gw.addresses["tunnel"][1]
            # Connections that never start a TLS handshake (slowloris on the tunnel port).
            idle = [
                await asyncio.open_connection("127.0.0.1", tport)
                for _ in range(server.MAX_HANDSHAKES_PER_ADDRESS + 20)
            ]
            await asyncio.sleep(0.3)
            assert gw.metrics.auth_failures["busy"] >= 20
            assert gw._handshakes <= server.MAX_HANDSHAKES_PER_ADDRESS
            await asyncio.sleep(1.2)  # their handshake time is up: the slots are free again
            assert gw._handshakes == 0
            acfg = agent_config(fresh_pki, "dev1", tport, http=free_port())
            async with running_agent(acfg) as agent:
                assert agent.connected.is_set()
            for _, w in idle:
                w.close()

    asyncio.run(main())
