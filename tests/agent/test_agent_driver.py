"""The agent's reconnect decisions around the core: superseded, refused and hints.

No network: ``_session`` is replaced by a script of outcomes and ``asyncio.sleep`` records
the delays the agent chose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.agent import agent as agent_mod
from hagate.agent.agent import Agent, Refused, Superseded
from hagate.agent.config import AgentConfig, ClientConfig, Reconnect

RC = Reconnect(fast_retries=3, fast_delay=0.1, base_delay=0.5, max_delay=30)


def _agent() -> Agent:
    cfg = AgentConfig(ClientConfig("h", 1, "h", Path("a"), Path("b"), Path("c")), [], RC)
    agent = Agent.__new__(Agent)
    agent.cfg = cfg
    agent.connected = asyncio.Event()
    agent._pool_tasks = set()
    agent.superseded = 0
    agent._sid = ""
    agent.on_change = None
    agent._reached = False
    agent._standby_tasks = {}
    agent._parked = set()
    agent._promotions = []
    agent._waiter = None
    agent._reader = None
    agent._data_client = cfg.client
    agent._version = 0
    return agent


def _delays(
    outcomes: list[BaseException | None], monkeypatch: pytest.MonkeyPatch, version: int = 0
) -> list[float]:
    """Run the agent through ``outcomes`` (None: an established session that was lost)."""
    agent = _agent()
    agent._version = version
    script: Iterator[BaseException | None] = iter(outcomes)
    delays: list[float] = []

    async def session() -> None:
        agent._established = True  # every scripted session got its welcome first
        outcome = next(script)
        if outcome is not None:
            raise outcome

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == len(outcomes):
            raise asyncio.CancelledError

    agent._session = session  # type: ignore[method-assign]
    monkeypatch.setattr(agent_mod.asyncio, "sleep", sleep)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await agent.run()

    asyncio.run(main())
    return delays


def test_a_lost_session_is_retried_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = _delays([None, None, None], monkeypatch)
    assert all(d <= 0.05 for d in delays)


def test_superseded_by_our_own_newer_connection_is_no_twin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``same_instance`` means this agent's own newer session won (a standby promoted
    across a redial): redial fast, count no supersession. Without it, hint 0 (a v1 gateway,
    or a cluster peer's newer session of this device) is still the slow wait, whatever the
    version."""

    own = [Superseded(0, same_instance=True), None]
    assert all(d <= 0.05 for d in _delays(own, monkeypatch, version=3))
    for version in (1, 3):
        slow = _delays([Superseded(0), None], monkeypatch, version=version)
        assert slow[0] >= 15, version


def test_failed_redials_keep_a_steady_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first fast retry, failed dials (the VIP not moved yet) wait ~period each."""
    agent_fails = [None] + [ConnectionRefusedError()] * 6

    delays = _delays_failing(agent_fails, monkeypatch)
    assert delays[0] <= 0.05
    assert all(0.125 <= d <= 0.375 for d in delays[1:]), delays


def _delays_failing(
    outcomes: list[BaseException | None], monkeypatch: pytest.MonkeyPatch
) -> list[float]:
    """Like _delays, but only a None outcome is an established session."""
    agent = _agent()
    script: Iterator[BaseException | None] = iter(outcomes)
    delays: list[float] = []

    async def session() -> None:
        outcome = next(script)
        agent._established = outcome is None
        if outcome is not None:
            raise outcome

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == len(outcomes):
            raise asyncio.CancelledError

    agent._session = session  # type: ignore[method-assign]
    monkeypatch.setattr(agent_mod.asyncio, "sleep", sleep)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await agent.run()

    asyncio.run(main())
    return delays


def test_superseded_sessions_do_not_reset_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin flap of issue 11: a session that ended superseded is no success.

    A v1 gateway gives no hint: the agent's own back-off applies and keeps growing to the cap
    (it used to be reset to a 0.1 s fast retry after every superseded session).
    """
    delays = _delays([Superseded()] * 4, monkeypatch)
    assert all(d >= 15 for d in delays), delays  # at the 30 s cap, jittered down to half


def test_the_gateway_hint_is_obeyed_and_never_shortened(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = _delays([Superseded(4000), Refused("twin", "twin", 1900)], monkeypatch)
    assert 4.0 <= delays[0] <= 4.4
    assert 1.9 <= delays[1] <= 2.09


def test_a_good_session_after_superseded_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = _delays([Superseded(2000), None], monkeypatch)
    assert delays[0] >= 2.0 and delays[1] <= 0.15


def test_a_cancel_as_the_awaited_step_completes_is_not_swallowed() -> None:
    """CPython gh-86296 (3.11): ``asyncio.wait_for`` returns the result when the task is
    cancelled in the loop turn its inner future completes. A dial that swallowed it went
    on to a session that never ended (the console's teardown waited 10 s on the task)."""
    from hagate.agent.agent import wait_for

    async def main() -> None:
        loop = asyncio.get_running_loop()
        inner: asyncio.Future[int] = loop.create_future()
        task = asyncio.create_task(wait_for(inner, 10))
        await asyncio.sleep(0)  # the task waits on inner
        inner.set_result(1)
        task.cancel()  # same turn: the plain wait_for would return 1
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
