"""What happened when: events and request results on one monotonic clock, as a table and JSON.

Times are ``time.monotonic()`` seconds while measuring; the table and timeline.json show them
relative to the crash (``t0``), so the failover reads from 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hagate.lab.demo.probe import Request

# same-time events read in cause order
_ORDER = {
    k: i
    for i, k in enumerate(
        ("crash", "restart", "released", "master", "garp", "agent", "request", "fleet99")
    )
}


@dataclass(frozen=True, slots=True)
class Event:
    """One milestone: ``key`` is stable (for JSON and tests), ``label`` is for people."""

    t: float
    key: str
    label: str
    phase: str


@dataclass
class Phase:
    """One measured stretch: the failover, or node-1's return."""

    name: str
    title: str
    start: float
    events: list[Event] = field(default_factory=list)
    complete: bool = False
    note: str = ""
    stats: dict[str, object] = field(default_factory=dict)

    def time_of(self, key: str) -> float | None:
        return next((e.t for e in self.events if e.key == key), None)

    def add(self, t: float, key: str, label: str) -> Event:
        event = Event(t, key, label, self.name)
        self.events.append(event)
        self.events.sort(key=lambda e: (e.t, _ORDER.get(e.key, len(_ORDER))))
        return event


def outage(requests: Sequence[Request], start: float, end: float) -> dict[str, object]:
    """Failed requests sent in [start, end), and the longest run of them in seconds."""
    inside = [r for r in requests if start <= r.start < end]
    failed = [r for r in inside if not r.ok]
    longest = 0.0
    run_start: float | None = None
    last_ok_end = None
    for r in inside:
        if not r.ok:
            if run_start is None:
                run_start = last_ok_end if last_ok_end is not None else r.start
        else:
            if run_start is not None:
                longest = max(longest, r.end - run_start)
                run_start = None
            last_ok_end = r.end
    if run_start is not None and inside:
        longest = max(longest, inside[-1].end - run_start)
    return {"sent": len(inside), "failed": len(failed), "longest_gap_s": round(longest, 3)}


def render_table(phase: Phase, t0: float) -> str:
    """The phase as a table: each event's time since ``t0`` and since the event before."""
    rows = [(f"{phase.title}", "t (s)", "step (s)")]
    previous: float | None = None
    for event in phase.events:
        step = "" if previous is None else f"+{event.t - previous:.3f}"
        rows.append((event.label, f"{event.t - t0:.3f}", step))
        previous = event.t
    width = max(len(r[0]) for r in rows)
    lines = [f"  {rows[0][0]:<{width}}  {rows[0][1]:>8}  {rows[0][2]:>9}"]
    lines.append("  " + "-" * (width + 21))
    lines += [f"  {a:<{width}}  {b:>8}  {c:>9}" for a, b, c in rows[1:]]
    if phase.note:
        lines.append(f"  {phase.note}")
    return "\n".join(lines)


def timeline_data(
    *,
    options: dict[str, object],
    lab: str,
    t0: float,
    phases: Sequence[Phase],
    requests: Sequence[Request],
    summary: dict[str, object],
    fleet: dict[str, object] | None = None,
) -> dict[str, object]:
    """The content of timeline.json (times in seconds since the crash); ``fleet`` with
    ``--devices``: its curves (devices reachable, agents back over time) per phase."""
    data: dict[str, object] = {
        "format": "hagate-demo-timeline/1",
        "lab": lab,
        "options": options,
        "t0": "node-1 SIGKILL (time.monotonic, all times are seconds since it)",
        "summary": summary,
        "phases": [
            {
                "name": p.name,
                "title": p.title,
                "start": round(p.start - t0, 4),
                "complete": p.complete,
                "note": p.note,
                "stats": p.stats,
                "events": [
                    {"t": round(e.t - t0, 4), "key": e.key, "label": e.label} for e in p.events
                ],
            }
            for p in phases
        ],
        "requests": [r.as_dict(t0) for r in requests],
    }
    if fleet is not None:
        data["fleet"] = fleet
    return data


def write_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
