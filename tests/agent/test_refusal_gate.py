"""A fleet process's agents share a refusal (bench only): skipped attempts, same schedule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hagate.agent import agent as agent_mod
from hagate.agent.agent import Agent, RefusalGate
from hagate.agent.config import AgentConfig, ClientConfig, Reconnect

REAL_SLEEP = asyncio.sleep


def test_the_gate_answers_for_its_window_only() -> None:
    gate = RefusalGate(0.1)
    assert not gate.refusing(5.0)  # nothing refused yet
    gate.refused(5.0)
    assert gate.refusing(5.05) and gate.skipped == 1
    assert not gate.refusing(5.2)  # stale: try for real
    gate.refused(4.0)  # an older answer does not move it back
    assert gate.last == 5.0


def _agent(gate: RefusalGate | None) -> Agent:
    cfg = AgentConfig(ClientConfig("h", 1, "h", Path("a"), Path("b"), Path("c")), [], Reconnect())
    agent = Agent.__new__(Agent)
    agent.cfg = cfg
    agent.connected = asyncio.Event()
    agent._pool_tasks = set()
    agent.superseded = 0
    agent._sid = ""
    agent.on_change = None
    agent.gate = gate
    agent._reached = False
    agent._established = False
    return agent


def _attempts(gate: RefusalGate | None, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Two agents against a refusing address for 40 waits each: (real attempts, waits)."""
    agents = [_agent(gate), _agent(gate)]
    real = [0]
    waits = [0]

    async def refused() -> None:
        real[0] += 1
        raise ConnectionRefusedError("refused")

    async def sleep(delay: float) -> None:
        waits[0] += 1
        if waits[0] >= 80:
            raise asyncio.CancelledError
        await REAL_SLEEP(0)  # no time passes: every retry falls in the gate's window

    for a in agents:
        a._session = refused  # type: ignore[method-assign]
    monkeypatch.setattr(agent_mod.asyncio, "sleep", sleep)

    async def main() -> None:
        tasks = [asyncio.ensure_future(a.run()) for a in agents]
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return real[0], waits[0]


def test_siblings_skip_attempts_a_refusal_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    alone, waits_alone = _attempts(None, monkeypatch)
    shared, waits_shared = _attempts(RefusalGate(0.1), monkeypatch)
    assert waits_alone >= 80 and waits_shared >= 80  # the same pace of retries
    assert alone >= 78  # without a gate every retry is a connect
    assert shared <= 3  # within the window one refusal answered for both
