"""A slow or stalled peer on one stream never stalls the others.

The stalled-download case runs on loopback (it is about kernel TCP buffers filling); the
others on the memory network (tests/gateway/memory_kit.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hagate.agent.config import AgentConfig, LocalService
from hagate.gateway.protocol import ServiceKind, ServiceSpec
from hagate.net.backend import MemoryBackend

from .kit import (
    Pki,
    agent_config,
    echo,
    echo_roundtrip,
    echo_service,
    free_port,
    gateway_config,
    running_agent,
    running_gateway,
)
from .memory_kit import (
    memory_agent,
    memory_gateway,
    memory_gateway_config,
    memory_network,
    roundtrip,
    serve,
    user,
)

ECHO = 22
SSH = 20022


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    return memory_network(monkeypatch)


async def firehose() -> tuple[asyncio.Server, int]:
    """Sends 64 KiB blocks for ever (until the reader stops reading)."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        block = b"x" * 65536
        try:
            while True:
                w.write(block)
                await w.drain()
        except ConnectionError:
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_stalled_stream_does_not_block_another(pki: Pki) -> None:
    async def main() -> None:
        hose, hose_port = await firehose()
        echo_srv, echo_port = await echo_service()
        hose_gw, echo_gw = free_port(), free_port()
        pinned = {"dev3/hose": hose_gw, "dev3/echo": echo_gw}
        async with running_gateway(gateway_config(pki, tcp_pinned=pinned)) as gw:
            base = agent_config(pki, "dev3", gw.addresses["tunnel"][1])
            services = [
                LocalService(
                    ServiceSpec("hose", ServiceKind.TCP, hose_gw, hose_port), "127.0.0.1", hose_port
                ),
                LocalService(
                    ServiceSpec("echo", ServiceKind.TCP, echo_gw, echo_port), "127.0.0.1", echo_port
                ),
            ]
            async with running_agent(AgentConfig(base.client, services, base.reconnect)):
                # A user opens the firehose and never reads: every buffer on the way fills.
                stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", hose_gw)
                stalled_r._transport.pause_reading()  # type: ignore[attr-defined]
                await asyncio.sleep(0.5)
                moved = gw.bytes_forwarded()[1]
                await asyncio.sleep(0.3)
                assert gw.bytes_forwarded()[1] - moved < 512 * 1024, "gateway kept reading"
                # Meanwhile other streams of the same device work, and quickly.
                for _ in range(20):
                    t0 = time.monotonic()
                    assert await echo_roundtrip(echo_gw, b"hi" * 5000, timeout=2) == b"hi" * 5000
                    assert time.monotonic() - t0 < 0.5
                assert len(gw.streams) >= 1
                stalled_w.close()
        hose.close()
        echo_srv.close()

    asyncio.run(main())


def test_slow_request_head_does_not_block_others(pki: Pki, mem: MemoryBackend) -> None:
    async def main() -> None:
        service = await serve(mem, ECHO, echo)
        cfg = memory_gateway_config(pki, tcp_pinned={"dev1/ssh": SSH})
        async with memory_gateway(cfg, mem) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], tcp=ECHO, tcp_port=SSH)
            async with memory_agent(acfg, mem):
                # Slowloris: half a request head, then nothing.
                _, w = await user(mem, "127.0.0.1", gw.addresses["http"][1])
                w.write(b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\n")
                assert await roundtrip(mem, "127.0.0.1", SSH, b"still here") == b"still here"
                w.close()
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))


def test_stream_limit_per_device(pki: Pki, mem: MemoryBackend) -> None:
    async def main() -> None:
        service = await serve(mem, ECHO, echo)
        cfg = memory_gateway_config(
            pki, streams_per_device=2, anonymous_share=1.0, tcp_pinned={"dev1/ssh": SSH}
        )
        async with memory_gateway(cfg, mem) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], tcp=ECHO, tcp_port=SSH)
            async with memory_agent(acfg, mem):
                held = [await user(mem, "127.0.0.1", SSH) for _ in range(2)]
                for r, w in held:
                    w.write(b"x")
                    assert await asyncio.wait_for(r.readexactly(1), 2) == b"x"
                r, w = await user(mem, "127.0.0.1", SSH)
                assert await asyncio.wait_for(r.read(), 2) == b""  # refused: closed at once
                assert gw.metrics.stream_failures["limit"] == 1
                for _, hw in held:
                    hw.close()
                for _ in range(100):  # the leases end as the pipes see the users' FIN
                    if not gw.streams:
                        break
                    await asyncio.sleep(0.01)
                assert await roundtrip(mem, "127.0.0.1", SSH, b"free again") == b"free again"
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))
