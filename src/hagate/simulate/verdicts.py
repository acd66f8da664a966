"""Verdicts in words: who took each VIP when and why, outages, split brain, tracking effects."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from hagate.simulate.runner import Result, Row, View
from hagate.simulate.scenario import Fail, Loss, Partition
from hagate.vrrp.actions import PriorityChanged, StateChanged
from hagate.vrrp.advert import IPAddress
from hagate.vrrp.state import State
from hagate.vrrp.tracking import PRIORITY_OWNER

SPLIT_BRAIN_MIN = 0.1  # s; shorter overlaps are the normal hand-over race (one link delay)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # startup, failover, preemption, outage, split_brain, tracking, sticky, loss,
    # note, final
    text: str
    time: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "time": self.time, "text": self.text}


@dataclass(frozen=True, slots=True)
class Segment:
    """Who holds ``vip`` from ``start`` to ``end``."""

    vip: IPAddress
    start: float
    end: float
    holders: tuple[str, ...]


def _s(t: float) -> str:
    return f"{t:.1f} s"


def segments(result: Result, vip: IPAddress) -> list[Segment]:
    """Who holds ``vip`` over time (computed once per result)."""
    return all_segments(result).get(vip, [])


def all_segments(result: Result) -> dict[IPAddress, list[Segment]]:
    cached: dict[IPAddress, list[Segment]] | None = result.cache.get("segments")
    if cached is not None:
        return cached
    current: dict[IPAddress, tuple[str, ...]] = {v: () for v in result.vips}
    since: dict[IPAddress, float] = dict.fromkeys(result.vips, 0.0)
    out: dict[IPAddress, list[Segment]] = {v: [] for v in result.vips}
    previous: dict[str, frozenset[IPAddress]] = {}
    for row in result.rows:
        key = row.entry.node
        view = row.views.get(key)
        if view is None:
            continue
        old = previous.get(key, frozenset())
        if view.vips == old:
            continue
        previous[key] = view.vips
        t = row.entry.time
        for vip in old ^ view.vips:
            holders = tuple(k for k, v in row.views.items() if vip in v.vips)
            if holders == current[vip]:
                continue
            if t > since[vip] or current[vip]:
                out[vip].append(Segment(vip, since[vip], t, current[vip]))
            current[vip], since[vip] = holders, t
    for vip in result.vips:
        out[vip].append(Segment(vip, since[vip], result.duration, current[vip]))
        out[vip] = [s for s in out[vip] if s.end > s.start or s.holders]
    result.cache["segments"] = out
    return out


def _rows_of(result: Result, key: str) -> list[Row]:
    by_node = result.cache.get("rows_by_node")
    if by_node is None:
        index: dict[str, list[Row]] = {}
        for row in result.rows:
            index.setdefault(row.entry.node, []).append(row)
        by_node = result.cache["rows_by_node"] = index
    return by_node.get(key, [])


def _became_master(result: Result, key: str, at: float) -> StateChanged | None:
    for row in _rows_of(result, key):
        action = row.entry.action
        if (
            isinstance(action, StateChanged)
            and action.new is State.MASTER
            and abs(row.entry.time - at) < 1e-9
        ):
            return action
    return None


def _loss_cause(result: Result, key: str, before: float) -> tuple[str, float] | None:
    """Why ``key`` lost its VIPs at or before ``before``: (words, time)."""
    for row in reversed(_rows_of(result, key)):
        t = row.entry.time
        if t > before + 1e-9:
            continue
        e = row.entry
        if e.kind == "event" and e.text.startswith("crash"):
            return f"{key} crashed", t
        if isinstance(e.action, StateChanged) and e.action.old is State.MASTER:
            new = e.action.new
            if new is State.STOP:
                return f"{key} stopped (priority 0 advert)", t
            if new is State.FAULT:
                return f"{key} went to FAULT ({e.action.reason})", t
            return f"{key} gave way: {e.action.reason}", t
    return None


def _preempt_why(result: Result, winner: str, loser: str, views: dict[str, View]) -> str:
    params = result.instance(winner).params
    prio = views[winner].priority
    lost = views[loser].priority
    if params.is_owner:
        who = f"{winner} has priority 255 (address owner)"
    else:
        who = f"{winner} has priority {prio}"
        if lost is not None:
            who += f" > {lost}"
    # A winner that preempts has no nopreempt in force: the config model cleared a void one
    # (priority 255, state MASTER) with its finding, which hagate simulate prints.
    how = "no nopreempt"
    text = f"{who} and {how}"
    base = result.instance(loser).params.priority
    if lost is not None and lost < base:
        text += f"; {loser}'s priority is down from {base} to {lost}"
    return text


def vip_verdicts(result: Result, vip: IPAddress) -> list[Verdict]:
    """Moves, outages and split brains of ``vip`` (computed once per result)."""
    key = f"vip_verdicts {vip}"
    cached = result.cache.get(key)
    if cached is None:
        cached = result.cache[key] = _vip_verdicts(result, vip)
    return cached


def _vip_verdicts(result: Result, vip: IPAddress) -> list[Verdict]:
    out: list[Verdict] = []
    segs = segments(result, vip)
    held_before: set[str] = set()
    last_holder: str | None = None
    lost_at: float | None = None
    for seg in segs:
        holders = seg.holders
        if len(holders) > 1 and seg.end - seg.start >= SPLIT_BRAIN_MIN:
            out.append(
                Verdict(
                    "split_brain",
                    f"split brain from {_s(seg.start)} to {_s(seg.end)} "
                    f"({seg.end - seg.start:.1f} s): {' and '.join(holders)} "
                    f"{'both' if len(holders) == 2 else 'all'} hold {vip}",
                    seg.start,
                )
            )
        if not holders:
            if last_holder is not None:
                lost_at = seg.start
                if seg.end < result.duration:
                    out.append(
                        Verdict(
                            "outage",
                            f"{vip} is held by nobody from {_s(seg.start)} to {_s(seg.end)} "
                            f"({seg.end - seg.start:.2f} s)",
                            seg.start,
                        )
                    )
                else:
                    out.append(
                        Verdict("outage", f"{vip} is held by nobody from {_s(seg.start)} on")
                    )
            continue
        new = [h for h in holders if h != last_holder]
        if len(holders) == 1 and new:
            out.append(_move(result, vip, seg, holders[0], last_holder, held_before, lost_at))
        if len(holders) == 1:
            last_holder = holders[0]
            lost_at = None
            held_before.add(holders[0])
    return out


def _move(
    result: Result,
    vip: IPAddress,
    seg: Segment,
    winner: str,
    previous: str | None,
    held_before: set[str],
    lost_at: float | None,
) -> Verdict:
    t = seg.start
    change = _became_master(result, winner, t)
    reason = change.reason if change else "it became MASTER"
    if previous is None:
        return Verdict("startup", f"{vip} comes up on {winner} at {_s(t)} ({reason})", t)
    back = " back" if winner in held_before else ""
    times = result.cache.get("row_times")
    if times is None:
        times = result.cache["row_times"] = [r.entry.time for r in result.rows]
    views = result.rows[min(bisect_left(times, t - 1e-9), len(result.rows) - 1)].views
    cause = _loss_cause(result, previous, t)
    if cause is not None and cause[0].startswith(f"{previous} gave way"):
        cause = None  # it yielded to the winner: preemption, explained below
    if cause is None:
        why = _preempt_why(result, winner, previous, views)
        return Verdict(
            "preemption",
            f"{winner} takes the VIP{back} from {previous} at {_s(t)} (preemption: {why})",
            t,
        )
    words, when = cause
    return Verdict(
        "failover",
        f"{winner} takes over {vip}{back} at {_s(t)}, {t - when:.2f} s after {words}: {reason}",
        t,
    )


def tracking_verdicts(result: Result) -> list[Verdict]:
    out: list[Verdict] = []
    for step in result.scenario.steps:
        if not isinstance(step, Fail):
            continue
        host = result.cluster.host(step.node)
        assert host is not None
        model = host.scripts.get(step.item)
        for inst in host.instances:
            if step.item not in inst.interfaces and step.item not in inst.scripts:
                continue
            item = next(i for i in inst.params.tracked if i.name == step.item)
            end = result.duration if step.end is None else step.end
            window = f"{_s(step.start)} to {_s(end)}"
            if item.weight and inst.params.is_owner:
                out.append(
                    Verdict(
                        "tracking",
                        f"{step.item} has no effect on {inst.key}: weights are ignored at "
                        f"priority {PRIORITY_OWNER} (failing {window})",
                        step.start,
                    )
                )
                continue
            hit = _tracked_change(result, inst.key, step.item, step.start, end)
            if hit is None:
                how = (
                    f"fall {model.fall} x interval {model.interval:g} s"
                    if model is not None
                    else "it was never observed"
                )
                out.append(
                    Verdict(
                        "tracking",
                        f"{step.item} failing on {inst.key} ({window}) changes nothing: "
                        f"too short to count ({how})",
                        step.start,
                    )
                )
                continue
            t, effect = hit
            delay = ""
            if model is not None:
                delay = (
                    f", {t - step.start:.1f} s after it started failing "
                    f"(fall {model.fall} x interval {model.interval:g} s)"
                )
            moved = [
                v
                for vip in result.vips
                for v in vip_verdicts(result, vip)
                if v.time is not None
                and t - 1e-9 <= v.time <= end + 1e-9
                and v.kind in ("preemption", "failover")
            ]
            tail = "; " + "; ".join(m.text for m in moved) if moved else "; no VIP moves"
            out.append(
                Verdict(
                    "tracking",
                    f"{step.item} counts as failed on {inst.key} at {_s(t)}{delay}: {effect}"
                    + tail,
                    t,
                )
            )
    return out


def _tracked_change(
    result: Result, key: str, item: str, start: float, end: float
) -> tuple[float, str] | None:
    for i, row in enumerate(result.rows):
        e = row.entry
        if e.node != key or e.time < start - 1e-9 or e.time > end + 1e-9:
            continue
        if e.kind == "event" and e.text == f"tracked {item} failed":
            following = result.rows[i + 1 : i + 4]
            for nxt in following:
                a = nxt.entry.action
                if nxt.entry.node == key and isinstance(a, PriorityChanged):
                    return e.time, f"priority {a.old} -> {a.new}"
                if nxt.entry.node == key and isinstance(a, StateChanged):
                    return e.time, f"{a.old} -> {a.new}"
            return e.time, "no priority change"
    return None


def nopreempt_verdicts(result: Result) -> list[Verdict]:
    """A node with nopreempt that comes back and leaves the VIP where it is (sticky)."""
    out: list[Verdict] = []
    for row in result.rows:
        e = row.entry
        if e.kind != "event" or e.text not in ("start", "restart") or e.time <= 0:
            continue
        inst = result.instance(e.node)
        p = inst.params
        if p.preempt or not p.vips:
            continue
        settle = e.time + p.effective_down_timer_adverts * p.advert_int + 1.0
        for seg in segments(result, p.vips[0]):
            if not seg.start <= settle < seg.end or len(seg.holders) != 1:
                continue
            holder = seg.holders[0]
            theirs = row.views[holder].priority if holder in row.views else None
            if holder != e.node and theirs is not None and theirs < p.priority:
                out.append(
                    Verdict(
                        "sticky",
                        f"{e.node} is back at {_s(e.time)} and stays BACKUP: its nopreempt "
                        f"leaves the VIP on {holder} (priority {theirs} < {p.priority})",
                        e.time,
                    )
                )
    return out


def loss_verdicts(result: Result) -> list[Verdict]:
    out: list[Verdict] = []
    for step in result.scenario.steps:
        if not isinstance(step, Loss):
            continue
        end = result.duration if step.end is None else step.end
        lost = sum(
            1
            for e in result.link.timeline
            if e.kind == "drop"
            and step.start <= e.time <= end
            and (step.node is None or e.node.split("/")[0] == step.node)
        )
        moves = [
            v
            for vip in result.vips
            for v in vip_verdicts(result, vip)
            if v.time is not None
            and step.start <= v.time <= end + 5
            and v.kind in ("preemption", "failover", "split_brain")
        ]
        who = f"{step.node}'s adverts" if step.node else "all adverts"
        text = f"{step.rate:.0%} loss of {who} from {_s(step.start)} to {_s(end)}: "
        text += f"{lost} adverts lost" if result.link.record_adverts else "adverts lost"
        text += f", {len(moves)} VIP moves or split brains" if moves else ", the VIP stays put"
        out.append(Verdict("loss", text, step.start))
    return out


def partition_verdicts(result: Result) -> list[Verdict]:
    out: list[Verdict] = []
    for step in result.scenario.steps:
        if not isinstance(step, Partition) or step.end is None:
            continue
        splits = [
            v
            for vip in result.vips
            for v in vip_verdicts(result, vip)
            if v.kind == "split_brain" and v.time is not None and step.start <= v.time < step.end
        ]
        if not splits:
            out.append(
                Verdict(
                    "split_brain",
                    f"the partition from {_s(step.start)} to {_s(step.end)} causes no split "
                    "brain (too short for Master_Down_Interval)",
                    step.start,
                )
            )
    return out


def final_verdict(result: Result) -> Verdict:
    parts = []
    for key, view in result.final().items():
        text = f"{key} {view.state}"
        if view.priority is not None:
            text += f" ({view.priority})"
        if view.vips:
            text += " holds " + ", ".join(str(v) for v in sorted(view.vips, key=str))
        parts.append(text)
    return Verdict("final", f"at {_s(result.duration)}: " + "; ".join(parts), result.duration)


def verdicts(result: Result) -> list[Verdict]:
    """Every verdict, in time order; config notes first, the final state last."""
    out = [Verdict("note", n) for n in result.cluster.notes]
    timed: list[Verdict] = []
    for vip in result.vips:
        timed.extend(vip_verdicts(result, vip))
    timed.extend(tracking_verdicts(result))
    timed.extend(partition_verdicts(result))
    timed.extend(nopreempt_verdicts(result))
    timed.extend(loss_verdicts(result))
    timed.sort(key=lambda v: v.time if v.time is not None else result.duration)
    return [*out, *timed, final_verdict(result)]
