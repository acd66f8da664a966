"""What a fleet did after one change of master, from its records (pure: no lab, no clock).

Two records, both on the lab's clock (``time.monotonic()``, shared by every process):

- agent events: ``(t, index, up)`` for every session that came up or went down (written by
  ``python -m hagate.agent.fleet --events``);
- user probes: ``(start, end, index, ok)`` for every request a user sent through the VIP to
  one of the sampled devices (``python -m hagate.lab.demo.fleetprobe``).

An agent *moved* when its session went down at or after the change; it is *back* at its
first session up after that. A sampled device is *reachable again* at the end of the first
successful request sent after its last failed one (a device that never failed was never
unreachable: 0). Quantiles are "the time by which that share of them was back".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

AgentEvent = tuple[float, int, bool]
ProbeRecord = tuple[float, float, int, bool]


@dataclass(frozen=True, slots=True)
class Storm:
    """One change of master as the fleet saw it; times in seconds since ``t0``."""

    agents: int  # the fleet's size
    moved: int  # agents whose session went down after t0
    back: list[float]  # reconnection times of the moved agents that came back, sorted
    sampled: int
    reach: list[float]  # per sampled device: when reachable again (0: never unreachable)
    unreached: int  # sampled devices not reachable again by the end of the record
    peak_rate: float  # most sessions up within one second (handshakes/s at the gateway)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (t, share reachable)

    @property
    def stuck(self) -> int:
        return self.moved - len(self.back)

    def agents_at(self, share: float) -> float | None:
        """When ``share`` of the moved agents were back (None: not that many came back)."""
        return quantile(self.back, share, self.moved)

    def reach_at(self, share: float) -> float | None:
        return quantile(self.reach, share, self.sampled)

    def mean_rate(self) -> float | None:
        """Sessions per second from the first to the last reconnection."""
        if len(self.back) < 2 or self.back[-1] <= self.back[0]:
            return None
        return (len(self.back) - 1) / (self.back[-1] - self.back[0])


def quantile(sorted_times: Sequence[float], share: float, of: int) -> float | None:
    """The time by which ``share`` of ``of`` items had happened (``sorted_times``)."""
    if of <= 0:
        return None
    need = max(1, math.ceil(share * of - 1e-9))
    if need > len(sorted_times):
        return None
    return sorted_times[need - 1]


def storm(
    events: Iterable[AgentEvent],
    probes: Iterable[ProbeRecord],
    t0: float,
    agents: int,
    sampled: int,
    until: float = math.inf,
) -> Storm:
    """Summarise the records between ``t0`` and ``until``."""
    down: set[int] = set()
    back: dict[int, float] = {}
    ups: list[float] = []
    for t, index, up in sorted(events):
        if t < t0 or t > until:
            continue
        if not up:
            down.add(index)
        elif index in down and index not in back:
            back[index] = t - t0
            ups.append(t - t0)
    by_device: dict[int, list[tuple[float, float, bool]]] = {}
    for start, end, index, ok in probes:
        if start >= t0 and end <= until:
            by_device.setdefault(index, []).append((start - t0, end - t0, ok))
    reach: list[float] = []
    unreached = 0
    for records in by_device.values():
        records.sort()
        fails = [start for start, _end, ok in records if not ok]
        if not fails:
            reach.append(0.0)
            continue
        after = [end for start, end, ok in records if ok and start > fails[-1]]
        if after:
            reach.append(min(after))
        else:
            unreached += 1
    unreached += max(0, sampled - len(by_device))
    return Storm(
        agents=agents,
        moved=len(down),
        back=sorted(ups),
        sampled=sampled,
        reach=sorted(reach),
        unreached=unreached,
        peak_rate=_peak(sorted(ups), 1.0),
        curve=reach_curve(by_device, sampled),
    )


def _peak(times: Sequence[float], window: float) -> float:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def reach_curve(
    by_device: dict[int, list[tuple[float, float, bool]]], sampled: int, step: float = 0.05
) -> list[tuple[float, float]]:
    """(t, share of sampled devices whose latest answered request by t was OK)."""
    if not by_device or sampled <= 0:
        return []
    answers = sorted((end, index, ok) for index, rs in by_device.items() for _s, end, ok in rs)
    state: dict[int, bool] = {}
    curve: list[tuple[float, float]] = []
    t, i = 0.0, 0
    last = answers[-1][0]
    while t <= last + step:
        while i < len(answers) and answers[i][0] <= t:
            state[answers[i][1]] = answers[i][2]
            i += 1
        curve.append((round(t, 3), sum(state.values()) / sampled))
        t += step
    return curve


def parse_events(lines: Iterable[str]) -> list[AgentEvent]:
    """``<t> <index> up|down`` lines; a torn last line (a killed writer) is skipped."""
    out: list[AgentEvent] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("up", "down"):
            try:
                out.append((float(parts[0]), int(parts[1]), parts[2] == "up"))
            except ValueError:
                continue
    return out


def parse_probes(lines: Iterable[str]) -> list[ProbeRecord]:
    """``<start> <end> <index> 1|0`` lines."""
    out: list[ProbeRecord] = []
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and parts[3] in ("0", "1"):
            try:
                out.append((float(parts[0]), float(parts[1]), int(parts[2]), parts[3] == "1"))
            except ValueError:
                continue
    return out
