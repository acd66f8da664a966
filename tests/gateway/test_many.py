"""1,000 agents connected to one gateway at once (the benchmark goes to 10,000)."""

from __future__ import annotations

import asyncio
import random
import resource
import time
from pathlib import Path

import pytest

from hagate.agent.connect import open_stream
from hagate.gateway.server import raise_nofile_limit
from hagate.net.tls import client_context
from hagate.pki.ca import Role, init_ca, issue

from .kit import (
    Pki,
    agent_config,
    client_config,
    echo_service,
    gateway_config,
    running_gateway,
)

N_AGENTS = 1000


@pytest.fixture(scope="module")
def big_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root: Path = tmp_path_factory.mktemp("bigpki")
    init_ca(root)
    issue(root, Role.SERVER, "gateway", dns=["localhost"], ips=["127.0.0.1"])
    issue(root, Role.USER, "alice")
    for i in range(N_AGENTS):
        issue(root, Role.DEVICE, f"d{i}")
    return Pki(root)


def test_thousand_agents(big_pki: Pki) -> None:
    raise_nofile_limit(65536)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 4 * N_AGENTS + 100

    async def main() -> None:
        from hagate.agent.agent import Agent

        echo, echo_port = await echo_service()
        async with running_gateway(gateway_config(big_pki, heartbeat_ms=1000)) as gw:
            tport = gw.addresses["tunnel"][1]
            agents = [
                Agent(agent_config(big_pki, f"d{i}", tport, tcp=echo_port)) for i in range(N_AGENTS)
            ]
            t0 = time.monotonic()
            tasks = [asyncio.create_task(a.run()) for a in agents]
            while len(gw.sessions) < N_AGENTS:
                assert time.monotonic() - t0 < 60, f"only {len(gw.sessions)} agents connected"
                await asyncio.sleep(0.1)
            assert "hagate_agents_connected 1000" in gw.render_metrics()
            user = client_config(big_pki, "user", "alice", tport)
            ctx = client_context(user.cert, user.key, user.ca)
            for i in random.sample(range(N_AGENTS), 5):
                conn = await open_stream(user, ctx, f"d{i}", "ssh")
                conn.write(b"hello d%d" % i)
                await conn.drain()
                got = await asyncio.wait_for(conn.read_until(b"%d" % i, 100), 5)
                assert got == b"hello d%d" % i
                conn.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        echo.close()

    asyncio.run(main())
