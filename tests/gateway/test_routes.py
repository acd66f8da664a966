"""Enrol, expose http and tcp, reach both; connect; errors are clear, never a hang."""

from __future__ import annotations

import asyncio

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
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
        async with running_gateway(gateway_config(pki)) as gw:
            tport = gw.addresses["tunnel"][1]
            cfg = agent_config(pki, "dev1", tport, http=web_port, tcp=echo_port, tcp_port=tcp_port)
            async with running_agent(cfg) as agent:
                assert agent.routes == {"http": f"dev1.{DOMAIN}", "ssh": f"tcp:{tcp_port}"}
                status, body = await http_get(gw.addresses["http"][1], f"dev1.{DOMAIN}", "/x")
                assert (status, body) == (200, b"hello from dev1 /x")
                assert await echo_roundtrip(tcp_port, b"ping" * 1000) == b"ping" * 1000
                print(gw.render_metrics())
        web.close()
        echo.close()

    asyncio.run(main())
