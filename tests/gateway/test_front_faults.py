"""Issue 11's faults on the user side, each reproduced: now answered right.

The frozen agent runs on the memory network (tests/gateway/memory_kit.py); the SNI case on
loopback, with a real TLS client.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from hagate.net.backend import MemoryBackend

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    gateway_config,
    hello,
    http_service,
    running_agent,
    running_gateway,
)
from .memory_kit import (
    Relay,
    memory_agent,
    memory_gateway,
    memory_gateway_config,
    memory_network,
    serve,
)
from .memory_kit import http_get as memory_http_get

WEB = 80  # the device's web service


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    return memory_network(monkeypatch)


def test_frozen_agent_is_504_within_open_timeout(pki: Pki, mem: MemoryBackend) -> None:
    """A frozen agent (spares pre-opened, then silent) was 502 after 15 s of retries."""

    async def main() -> None:
        service = await serve(mem, WEB, hello("dev1"))
        cfg = memory_gateway_config(pki, open_timeout=0.5, pool=2, pool_idle=-1.0)
        async with memory_gateway(cfg, mem) as gw:
            vip = await Relay(mem, gw.addresses["tunnel"][1]).start()
            async with memory_agent(agent_config(pki, "dev1", vip.port, http=WEB), mem):
                for _ in range(100):
                    if len(gw.sessions["dev1"].pool) == 2:
                        break
                    await asyncio.sleep(0.02)
                vip.freeze()  # every connection of the agent, spares included, goes silent
                t0 = time.monotonic()
                status, body = await memory_http_get(mem, gw.addresses["http"][1], f"dev1.{DOMAIN}")
                elapsed = time.monotonic() - t0
                assert status == 504, body
                assert elapsed < 0.9  # one open_timeout, not one per spare (was 3 of them)
            vip.close()
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))


def test_https_without_sni_never_gets_a_stale_421(pki: Pki) -> None:
    """36 of 200 HTTPS requests without SNI got 421 from a side table keyed by id(socket)."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        async with running_gateway(gateway_config(pki)) as gw:
            port = gw.addresses["https"][1]
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(pki, "dev1", tport, http=web_port)):
                ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
                ctx.check_hostname = False
                statuses = []
                for i in range(100):
                    # Alternate: a client naming another host by SNI (421, rightly), then one
                    # sending no SNI at all, which must not inherit the previous one's name.
                    sni = "other.gw.test" if i % 2 == 0 else None
                    r, w = await asyncio.open_connection(
                        "127.0.0.1", port, ssl=ctx, server_hostname=sni or ""
                    )
                    request = f"GET / HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\nConnection: close\r\n\r\n"
                    w.write(request.encode())
                    head = await asyncio.wait_for(r.read(), 5)
                    statuses.append((sni, int(head.split(b" ")[1])))
                    w.close()
                assert {s for sni, s in statuses if sni is None} == {200}
                assert {s for sni, s in statuses if sni is not None} == {421}
        web.close()

    asyncio.run(main())
