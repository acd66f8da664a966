"""The live ticker: one terminal row per interval with a mark for every request answered."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from hagate.lab.demo.probe import Request
from hagate.lab.demo.timeline import Event


def _marks(stream: TextIO) -> tuple[str, str]:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return ("✓", "✗") if encoding == "utf8" else ("+", "x")


class Ticker:
    """Rows of ``width`` seconds since ``t0``: ✓ a request answered OK, ✗ one that failed."""

    def __init__(self, t0: float, width: float = 0.5, stream: TextIO | None = None) -> None:
        self.t0 = t0
        self.width = width
        self.stream = stream or sys.stdout
        self.ok, self.fail = _marks(self.stream)
        self.row_start = t0
        self._shown: set[tuple[str, float]] = set()

    def due(self, now: float) -> bool:
        return now >= self.row_start + self.width

    def emit(self, requests: Sequence[Request], events: Sequence[Event], now: float) -> None:
        """Print every full row up to ``now`` (requests by answer time, new events named)."""
        while now >= self.row_start + self.width:
            end = self.row_start + self.width
            self._row(requests, events, self.row_start, end)
            self.row_start = end

    def flush(self, requests: Sequence[Request], events: Sequence[Event], now: float) -> None:
        """Print the rows up to ``now`` and a last partial one."""
        self.emit(requests, events, now)
        pending = [e for e in events if (e.key, e.t) not in self._shown]
        answered = any(self.row_start <= r.end < now for r in requests)
        if now > self.row_start and (answered or pending):
            self._row(requests, events, self.row_start, now)
            self.row_start = now

    def _row(
        self, requests: Sequence[Request], events: Sequence[Event], a: float, b: float
    ) -> None:
        got = [r for r in requests if a <= r.end < b]
        marks = "".join(self.ok if r.ok else self.fail for r in got)
        n_ok = sum(r.ok for r in got)
        new = [e for e in events if (e.key, e.t) not in self._shown and e.t < b]
        for e in new:
            self._shown.add((e.key, e.t))
        notes = "; ".join(f"{e.label} at {e.t - self.t0:+.3f} s" for e in new)
        text = f"    {a - self.t0:+6.2f} s  {marks:<14} {n_ok:>2}/{len(got):<2} ok"
        if notes:
            text += f"   <- {notes}"
        print(text, file=self.stream, flush=True)
