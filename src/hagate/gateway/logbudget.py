"""Per-device log lines with a budget: a storm of sessions is one summary, not 10,000 lines.

A failover brings every device's session up within seconds; one INFO line each cost the new
master about a third of its promotion time (formatting and writing 10,000 lines while the
devices wait) and buried everything else in the log. The first ``per_second`` lines of each
second stay at INFO; the rest go to DEBUG, and once that second is over one INFO line says how
many were held back, so the log still says what happened and where to look for each device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

PER_SECOND = 20  # INFO lines a second before the rest go to DEBUG
WINDOW_S = 1.0


class LogBudget:
    """``info()`` as ``logger.info`` up to ``per_second`` a second, then DEBUG and a count."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        per_second: int = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.per_second = per_second
        self.clock = clock
        self._start = -WINDOW_S
        self._lines = 0
        self._held = 0
        self._flush: asyncio.TimerHandle | None = None

    def info(self, msg: str, *args: object) -> None:
        now = self.clock()
        if now - self._start >= WINDOW_S:
            self.flush()
            self._start, self._lines = now, 0
        if self._lines < self.per_second:
            self._lines += 1
            self.logger.info(msg, *args)
            return
        self._held += 1
        self.logger.debug(msg, *args)
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a test, a script): the next window's first line flushes
            self._flush = loop.call_later(self._start + WINDOW_S - now, self.flush)

    def flush(self) -> None:
        """Say how many lines the window held back (at most one line; none if none)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._held:
            self.logger.info(
                "%d more %s lines in %.0f s at DEBUG (INFO keeps %d a second)",
                self._held,
                self.what,
                WINDOW_S,
                self.per_second,
            )
            self._held = 0
