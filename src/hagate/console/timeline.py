"""The cluster's timeline, built from successive `hagate vrrp status` snapshots of each node.

Pure: each observation carries ``now`` (the console's wall clock; the snapshots' own
``last_transition.at`` are the nodes' wall clocks, in the same epoch seconds). A transition is
a change of an instance's ``last_transition``; a failover is an instance becoming MASTER on a
node while another node was its master. Its outage is how long the instance had no master as
far as the console could tell: from the old master leaving MASTER (its own transition time) or,
when it died without a word (SIGKILL, power), from the last time the console saw it MASTER,
to the new master's transition time. A console polling every 0.25 s so over-states a silent
crash's outage by at most that; the new master's ``heard_master`` (when it last heard the old
master's advert, its source matched to a node by that node's ``source``) narrows it to about
one advert interval, and dates it for a console that was not watching.

The VRRP gap is not all a user sees: the devices must also dial the new master. ``gateways``
(each node's count of devices online, from its gateway's summary) follows each failover until
the new master has as many devices online as the old one last had (the agents' reconnection,
as the demo's "agent reconnected" and "100% of fleet devices reachable"): the event's
``devices_back_s`` runs from the outage's start to the poll that saw them all back, so it is
late by at most one poll; after ``RECOVERY_WAIT_S`` it stays what it got to.

Each snapshot's ``history`` (the daemon's last 32 transitions) is replayed, so that several
changes between two polls, and the failovers before the console started, are on the timeline
too; a become-MASTER older than what the console knows is history (it does not make a master),
and one whose predecessor shows up later (the old master's own MASTER -> X, or its source in
the new master's ``heard_master``) becomes the failover it was.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

MAX_EVENTS = 500
RECOVERY_WAIT_S = 120.0  # a failover's devices are followed this long after it


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
    devices_expected: int | None = None  # online on the old master before it
    devices_back: int | None = None  # online on the new master since
    devices_back_s: float | None = None  # from the outage's start until all were back

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
            d.update(devices_expected=self.devices_expected, devices_back=self.devices_back)
            d.update(devices_back_s=self.devices_back_s)
        return d

    def failover_text(self) -> str:
        """``failover A -> B (VI_1), outage 0.38 s, devices back 10/10 after 2.10 s``."""
        text = f"failover {self.from_node} -> {self.node} ({self.instance})"
        if self.outage_s is not None:
            text += f", outage {self.outage_s:.2f} s"
        if self.devices_expected:
            text += f", devices back {self.devices_back or 0}/{self.devices_expected}"
            if self.devices_back_s is not None:
                text += f" after {self.devices_back_s:.2f} s"
        return text


@dataclass(slots=True)
class _Seen:
    """One (node, instance) as last observed."""

    state: str
    transition_at: float | None
    master_seen_at: float | None = None  # last observation in MASTER
    left_master_at: float | None = None  # its own MASTER -> X transition time
    source: str = ""  # its advert source (what the others' heard_master names)


@dataclass(frozen=True, slots=True)
class _Heard:
    """An instance's heard_master: the old master's source and when it was last heard."""

    source: str
    at: float


def _heard(inst: dict[str, Any]) -> _Heard | None:
    h = inst.get("heard_master")
    if not isinstance(h, dict) or not isinstance(h.get("at"), (int, float)) or not h.get("from"):
        return None
    return _Heard(str(h["from"]), float(h["at"]))


def _entries(inst: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """The snapshot's transitions with a time, oldest first: its history, else the last one."""
    history = inst.get("history")
    raw = history if isinstance(history, list) and history else [inst.get("last_transition")]
    out = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(entry.get("at"), (int, float)):
            out.append((float(entry["at"]), entry))
    return out


@dataclass
class Timeline:
    """Feed ``observe(node, snapshot or None, now)``; read ``events`` and ``masters``."""

    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    seq: int = 0
    _seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    _reachable: dict[str, bool] = field(default_factory=dict)
    # instance -> the node last known to be its master, and since when (its transition)
    _master: dict[str, str] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)
    # become-MASTER events with no known predecessor: seq -> what the new master last heard
    _orphans: dict[int, _Heard | None] = field(default_factory=dict)
    _online: dict[str, int] = field(default_factory=dict)  # node -> devices online, last heard
    _recovering: set[int] = field(default_factory=set)  # failovers whose devices are followed
    _now: float = 0.0  # the latest observation's time

    def recovering(self) -> bool:
        """Whether a failover's devices are being followed."""
        return bool(self._recovering)

    def gateways(self, online: dict[str, int | None], now: float) -> None:
        """Each node's devices online (None: its gateway did not answer), at ``now``."""
        for node, count in online.items():
            if count is not None:
                self._online[node] = count
        for i, e in enumerate(self.events):
            if e.seq not in self._recovering:
                continue
            back = online.get(e.node)
            start = e.at - (e.outage_s or 0.0)
            expected = e.devices_expected or 0
            done = back is not None and back >= expected
            if back is not None and back != e.devices_back:
                took = round(max(0.0, now - start), 3) if done else None
                self._set(i, devices_back=back, devices_back_s=took)
            if done or now - e.at > RECOVERY_WAIT_S:
                self._recovering.discard(e.seq)

    def _follow(self, event: Event) -> Event:
        """A new failover: follow its devices, if the old master had any online (and it is
        news: a failover replayed from a daemon's history long ago is not followed)."""
        expected = self._online.get(event.from_node)
        if not expected or self._now - event.at > RECOVERY_WAIT_S:
            return event
        self._recovering.add(event.seq)
        return replace(event, devices_expected=expected, devices_back=0)

    def _set(self, index: int, **changes: Any) -> None:
        """Change the event at ``index`` in place (a failover's text follows its fields)."""
        e = replace(self.events[index], **changes)
        if e.kind is EventKind.FAILOVER:
            e = self._follow(e) if e.devices_expected is None else e
            e = replace(e, text=e.failover_text())
        self.events[index] = e

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
        self._now = max(self._now, now)
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
        entries = _entries(inst)
        key = (node, name)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(state, None)
        mark = seen.transition_at
        start = 0  # past the last one the console has (times in a history may step back)
        if mark is not None:
            for i, (at, _) in enumerate(entries):
                if at <= mark:
                    start = i + 1
        fresh = entries[start:]
        if not fresh and entries and entries[-1][0] != mark:
            fresh = entries[-1:]  # its clock went back (or a new daemon): the last one is new
        seen.state = state
        if entries:
            seen.transition_at = entries[-1][0]
        source = str(inst.get("source") or "")
        if source and source != seen.source:
            seen.source = source
            self._claim(node, name, source)
        heard = _heard(inst)
        start = len(entries) - len(fresh)
        prior = entries[start - 1][0] if start > 0 else None  # its transition before them
        for at, last in fresh:
            old, new = str(last.get("old") or "?"), str(last.get("new") or state)
            reason = str(last.get("reason") or "")
            if old == "MASTER":
                seen.left_master_at = at
                self._narrow(node, name, at)
                self._adopt(node, name, at)
            if new == "MASTER":
                # what it heard counts for its latest takeover only, from its BACKUP before it
                valid = (
                    heard is not None and heard.at <= at and (prior is None or heard.at >= prior)
                )
                self._became_master(node, name, at, old, reason, now, heard if valid else None)
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
            prior = at
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
                    self._set(i, outage_s=round(max(0.0, e.at - left), 3))
                return

    def _became_master(
        self,
        node: str,
        name: str,
        at: float,
        old: str,
        reason: str,
        now: float,
        heard: _Heard | None = None,
    ) -> None:
        if at < self._since.get(name, float("-inf")):
            # history from before the master the console knows: on the timeline, no more
            self._add(at=at, kind=EventKind.TRANSITION, node=node, instance=name,
                      text=f"{node} {name}: {old} -> MASTER", old=old, new="MASTER",
                      reason=reason)  # fmt: skip
            return
        prev = self._master.get(name)
        if prev is None and heard is not None:
            prev = self._node_with(name, heard.source, node)
        self._master[name] = node
        self._since[name] = at
        if prev is None or prev == node:
            event = self._add(
                at=at,
                kind=EventKind.TRANSITION,
                node=node,
                instance=name,
                text=f"{node} {name}: {old} -> MASTER",
                old=old,
                new="MASTER",
                reason=reason,
            )
            if prev is None:
                self._orphans[event.seq] = heard
            return
        before = self._seen.get((prev, name))
        lost: float | None = None
        if before is not None:
            left, seen = before.left_master_at, before.master_seen_at
            # Its own MASTER -> X time when that is this loss (not an older one), else the
            # last time it was known alive as master: seen MASTER by the console, or heard
            # by the new master (it died without a word).
            if heard is not None and heard.source == before.source:
                seen = heard.at if seen is None else max(seen, heard.at)
            lost = left if left is not None and (seen is None or left >= seen - 2.0) else seen
        elif heard is not None:
            lost = heard.at
        outage = None if lost is None else round(max(0.0, at - lost), 3)
        self._add(
            at=at,
            kind=EventKind.FAILOVER,
            node=node,
            instance=name,
            text="",
            old=old,
            new="MASTER",
            reason=reason,
            from_node=prev,
            outage_s=outage,
        )
        self._set(len(self.events) - 1)

    def _node_with(self, name: str, source: str, other_than: str) -> str | None:
        for (n, i), seen in self._seen.items():
            if i == name and n != other_than and seen.source == source:
                return n
        return None

    def _failover(self, index: int, from_node: str, lost: float) -> None:
        e = self.events[index]
        self._orphans.pop(e.seq, None)
        outage = round(max(0.0, e.at - lost), 3)
        self._set(index, kind=EventKind.FAILOVER, from_node=from_node, outage_s=outage)

    def _adopt(self, node: str, name: str, left: float) -> None:
        """``node`` left MASTER at ``left``: the first takeover after it, if nobody was known
        to precede it (the console saw it first, or started later), was from ``node``."""
        first: int | None = None
        for i, e in enumerate(self.events):
            later = e.instance == name and e.new == "MASTER" and e.at >= left
            if later and (first is None or e.at < self.events[first].at):
                first = i
        if first is None:
            return
        e = self.events[first]
        if e.seq in self._orphans and e.node != node and e.at - left <= 60.0:
            self._failover(first, node, left)

    def _claim(self, node: str, name: str, source: str) -> None:
        """``node``'s source is now known: a takeover whose new master last heard that source
        was a failover from ``node`` (silent crash: the outage runs from that advert)."""
        for i, e in enumerate(self.events):
            heard = self._orphans.get(e.seq)
            if e.instance == name and e.node != node and heard and heard.source == source:
                self._failover(i, node, heard.at)
