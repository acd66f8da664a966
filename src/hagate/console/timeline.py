"""The cluster's timeline, built from successive `hagate vrrp status` snapshots of each node.

Pure: each observation carries ``now`` (the console's wall clock; the snapshots' own
``last_transition.at`` are the nodes' wall clocks, in the same epoch seconds). A transition is
a change of an instance's ``last_transition``; a failover is an instance becoming MASTER on a
node while another node was its master. Its outage is how long the instance had no master as
far as the console could tell: from the old master leaving MASTER (its own transition time) or,
when it died without a word (SIGKILL, power), from the last time the console saw it MASTER,
to the new master's transition time. A console polling every 0.25 s so over-states a silent
crash's outage by at most that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

MAX_EVENTS = 500


class EventKind(Enum):
    TRANSITION = "transition"
    FAILOVER = "failover"
    UNREACHABLE = "unreachable"
    REACHABLE = "reachable"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: float
    kind: EventKind
    node: str
    instance: str
    text: str
    old: str = ""
    new: str = ""
    reason: str = ""
    from_node: str = ""
    outage_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "seq": self.seq,
            "at": round(self.at, 3),
            "kind": self.kind.value,
            "node": self.node,
            "instance": self.instance,
            "text": self.text,
        }
        if self.kind is EventKind.TRANSITION or self.kind is EventKind.FAILOVER:
            d.update(old=self.old, new=self.new, reason=self.reason)
        if self.kind is EventKind.FAILOVER:
            d.update(from_node=self.from_node, outage_s=self.outage_s)
        return d


@dataclass(slots=True)
class _Seen:
    """One (node, instance) as last observed."""

    state: str
    transition_at: float | None
    master_seen_at: float | None = None  # last observation in MASTER
    left_master_at: float | None = None  # its own MASTER -> X transition time


@dataclass
class Timeline:
    """Feed ``observe(node, snapshot or None, now)``; read ``events`` and ``masters``."""

    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    seq: int = 0
    _seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    _reachable: dict[str, bool] = field(default_factory=dict)
    # instance -> the node last known to be its master
    _master: dict[str, str] = field(default_factory=dict)

    def _add(self, **kw: Any) -> Event:
        self.seq += 1
        event = Event(seq=self.seq, **kw)
        self.events.append(event)
        return event

    def masters(self) -> dict[str, str]:
        """instance -> the node the console last saw as its master."""
        return dict(self._master)

    def observe(
        self, node: str, snapshot: dict[str, Any] | None, now: float, why: str = ""
    ) -> None:
        was = self._reachable.get(node)
        if snapshot is None:
            if was is not False:
                self._reachable[node] = False
                if was is True:
                    self._add(
                        at=now,
                        kind=EventKind.UNREACHABLE,
                        node=node,
                        instance="",
                        text=f"{node} unreachable{': ' + why if why else ''}",
                    )
            return
        if was is False:
            self._add(
                at=now, kind=EventKind.REACHABLE, node=node, instance="", text=f"{node} answers"
            )
        self._reachable[node] = True
        for inst in snapshot.get("instances") or []:
            if isinstance(inst, dict):
                self._instance(node, inst, now)

    def _instance(self, node: str, inst: dict[str, Any], now: float) -> None:
        name = str(inst.get("name") or f"vrid {inst.get('vrid')}")
        state = str(inst.get("state") or "?")
        last = inst.get("last_transition") or {}
        at = last.get("at") if isinstance(last, dict) else None
        at = float(at) if isinstance(at, (int, float)) else None
        key = (node, name)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(state, None)
        changed = at is not None and at != seen.transition_at
        seen.state, seen.transition_at = state, at
        if changed and at is not None:
            old, new = str(last.get("old") or "?"), str(last.get("new") or state)
            reason = str(last.get("reason") or "")
            if old == "MASTER":
                seen.left_master_at = at
                self._narrow(node, name, at)
            if new == "MASTER":
                self._became_master(node, name, at, old, reason, now)
            else:
                self._add(
                    at=at,
                    kind=EventKind.TRANSITION,
                    node=node,
                    instance=name,
                    text=f"{node} {name}: {old} -> {new}",
                    old=old,
                    new=new,
                    reason=reason,
                )
        if state == "MASTER":
            seen.master_seen_at = now
            if name not in self._master:
                self._master[name] = node

    def _narrow(self, node: str, name: str, left: float) -> None:
        """The old master's own word on when it left MASTER came after the failover was
        recorded (the console saw the new master first): the outage was shorter than the
        last-seen bound, so it is corrected in place."""
        for i in range(len(self.events) - 1, max(-1, len(self.events) - 20), -1):
            e = self.events[i]
            if e.kind is EventKind.FAILOVER and e.instance == name and e.from_node == node:
                if left <= e.at + 1.0 and (e.outage_s is None or e.at - left < e.outage_s):
                    outage = round(max(0.0, e.at - left), 3)
                    text = f"failover {node} -> {e.node} ({name}), outage {outage:.2f} s"
                    self.events[i] = replace(e, outage_s=outage, text=text)
                return

    def _became_master(
        self, node: str, name: str, at: float, old: str, reason: str, now: float
    ) -> None:
        prev = self._master.get(name)
        self._master[name] = node
        if prev is None or prev == node:
            self._add(
                at=at,
                kind=EventKind.TRANSITION,
                node=node,
                instance=name,
                text=f"{node} {name}: {old} -> MASTER",
                old=old,
                new="MASTER",
                reason=reason,
            )
            return
        before = self._seen.get((prev, name))
        lost: float | None = None
        if before is not None:
            left, seen = before.left_master_at, before.master_seen_at
            # Its own MASTER -> X time when that is this loss (not an older one), else the
            # last time it was seen MASTER (it died without a word).
            lost = left if left is not None and (seen is None or left >= seen - 2.0) else seen
        outage = None if lost is None else round(max(0.0, at - lost), 3)
        outage_text = "" if outage is None else f", outage {outage:.2f} s"
        self._add(
            at=at,
            kind=EventKind.FAILOVER,
            node=node,
            instance=name,
            text=f"failover {prev} -> {node} ({name}){outage_text}",
            old=old,
            new="MASTER",
            reason=reason,
            from_node=prev,
            outage_s=outage,
        )
