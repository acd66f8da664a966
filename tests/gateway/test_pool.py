"""Spare data connections: none while a device is idle, ready while it is in use."""

from __future__ import annotations

import asyncio

from .kit import (
    Pki,
    agent_config,
    echo_roundtrip,
    echo_service,
    free_port,
    gateway_config,
    running_agent,
    running_gateway,
)


async def _until(cond: object, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


def test_spares_follow_use(pki: Pki) -> None:
    async def main() -> None:
        echo, echo_port = await echo_service()
        port = free_port()
        cfg = gateway_config(pki, pool=2, pool_idle=0.5, tcp_pinned={"dev1/ssh": port})
        async with running_gateway(cfg) as gw:
            acfg = agent_config(
                pki, "dev1", gw.addresses["tunnel"][1], tcp=echo_port, tcp_port=port
            )
            async with running_agent(acfg):
                session = gw.sessions["dev1"]
                await asyncio.sleep(0.2)
                assert len(session.pool) == 0  # idle: the control connection only
                assert await echo_roundtrip(port, b"first") == b"first"  # asked for on demand
                # An on-demand open means spares ran short: the agent keeps one more.
                await _until(lambda: len(session.pool) == 3)
                assert await echo_roundtrip(port, b"second") == b"second"  # a spare, at once
                await _until(lambda: len(session.pool) == 3)
                await _until(lambda: len(session.pool) == 0, 3.0)  # unused: expired
                assert await echo_roundtrip(port, b"third") == b"third"
        echo.close()

    asyncio.run(main())


def test_eager_pool(pki: Pki) -> None:
    async def main() -> None:
        echo, echo_port = await echo_service()
        async with running_gateway(gateway_config(pki, pool=3, pool_idle=-1.0)) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], tcp=echo_port)
            async with running_agent(acfg):
                await _until(lambda: len(gw.sessions["dev1"].pool) == 3)
        echo.close()

    asyncio.run(main())
