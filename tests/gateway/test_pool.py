"""Spare data connections: none while a device is idle, ready while it is in use.

On the memory network (tests/gateway/memory_kit.py): the pool's logic, not sockets.
"""

from __future__ import annotations

import asyncio

import pytest

from hagate.net.backend import MemoryBackend

from .kit import Pki, agent_config, echo
from .memory_kit import (
    memory_agent,
    memory_gateway,
    memory_gateway_config,
    memory_network,
    roundtrip,
    serve,
)

ECHO = 22  # the device's echo service
SSH = 20022  # its inventory port on the gateway


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    return memory_network(monkeypatch)


async def _until(cond: object, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def test_spares_follow_use(pki: Pki, mem: MemoryBackend) -> None:
    async def main() -> None:
        service = await serve(mem, ECHO, echo)
        cfg = memory_gateway_config(pki, pool=2, pool_idle=0.3, tcp_pinned={"dev1/ssh": SSH})
        async with memory_gateway(cfg, mem) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], tcp=ECHO, tcp_port=SSH)
            async with memory_agent(acfg, mem):
                session = gw.sessions["dev1"]
                await asyncio.sleep(0.1)
                assert len(session.pool) == 0  # idle: the control connection only
                # Asked for on demand:
                assert await roundtrip(mem, "127.0.0.1", SSH, b"first") == b"first"
                # An on-demand open means spares ran short: the agent keeps one more.
                await _until(lambda: len(session.pool) == 3)
                assert await roundtrip(mem, "127.0.0.1", SSH, b"second") == b"second"  # a spare
                await _until(lambda: len(session.pool) == 3)
                await _until(lambda: len(session.pool) == 0, 3.0)  # unused: expired
                assert await roundtrip(mem, "127.0.0.1", SSH, b"third") == b"third"
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))


def test_eager_pool(pki: Pki, mem: MemoryBackend) -> None:
    async def main() -> None:
        service = await serve(mem, ECHO, echo)
        cfg = memory_gateway_config(pki, pool=3, pool_idle=-1.0)
        async with memory_gateway(cfg, mem) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], tcp=ECHO)
            async with memory_agent(acfg, mem):
                await _until(lambda: len(gw.sessions["dev1"].pool) == 3)
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))
