"""The gateway's per-device session lines have a budget: a storm is one summary."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hagate.gateway.logbudget import LogBudget


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_storm_keeps_the_first_lines_and_says_how_many_it_held(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.logbudget")
    clock = Clock()
    budget = LogBudget(log, "session", per_second=3, clock=clock)
    with caplog.at_level(logging.DEBUG, "test.logbudget"):
        for i in range(10):
            budget.info("device d%d: session up", i)
        clock.t += 1.0
        budget.info("device late: session up")  # a new second: first the summary
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert info == [
        "device d0: session up",
        "device d1: session up",
        "device d2: session up",
        "7 more session lines in 1 s at DEBUG (INFO keeps 3 a second)",
        "device late: session up",
    ]
    assert debug == [f"device d{i}: session up" for i in range(3, 10)]  # nothing lost


def test_the_summary_comes_when_the_storm_ends(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        budget = LogBudget(logging.getLogger("test.logbudget"), "session", per_second=1)
        budget.info("one")
        budget.info("two")
        await asyncio.sleep(1.2)  # no further line: the timer says it

    with caplog.at_level(logging.INFO, "test.logbudget"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records] == [
        "one",
        "1 more session lines in 1 s at DEBUG (INFO keeps 1 a second)",
    ]
