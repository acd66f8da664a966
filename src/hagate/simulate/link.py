"""A discrete-event simulator: VRRP instances on one fake link, driven by a virtual clock.

Each node runs one :class:`~hagate.vrrp.machine.VrrpMachine`. Every ``SendAdvert`` is
delivered to the other live nodes after ``delay`` seconds unless a partition or loss rate
says otherwise. Inputs (start, crash, restart, shutdown, tracker changes, partitions) are
scheduled at virtual times; everything that happens is appended to :attr:`Link.timeline`.
No sockets, no real time: a 10-minute scenario runs in milliseconds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hagate.vrrp.actions import (
    Action,
    AddVips,
    GroupStateChanged,
    MasterRxLowerPri,
    PriorityChanged,
    RemoveVips,
    RunNotify,
    SendAdvert,
    SendGratuitous,
    StateChanged,
)
from hagate.vrrp.advert import Advert, IPAddress
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State

Route = Callable[["Node", "Node", Advert], "Advert | str | None"]
"""``route(sender, receiver, advert)``: the advert the receiver accepts, a discard reason
(recorded as a ``discard`` entry), or None when the advert is not for the receiver at all."""


class SimulationError(ValueError):
    """A scenario asked for something impossible (unknown node, time in the past, ...)."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened. ``kind``: event, state, advert, vips, garp, notify, priority,
    group, drop, discard. ``action`` is the machine's action when the entry comes from one."""

    time: float
    node: str
    kind: str
    text: str
    action: Action | None = None

    def format(self, width: int = 8) -> str:
        return f"{self.time:9.3f}s  {self.node:<{width}} {self.text}"


@dataclass(slots=True)
class Node:
    """A simulated router: its parameters, its running machine (None while down)."""

    name: str
    params: VrrpParams
    machine: VrrpMachine | None = None
    vips: set[IPAddress] = field(default_factory=set)
    loss: float = 0.0  # probability that an outgoing advert is lost
    group: int = 0  # partition group; nodes hear only nodes of the same group
    _generation: int = 0  # invalidates stale timer events
    _armed: float | None = None

    @property
    def address(self) -> IPAddress:
        return self.params.primary_address

    @property
    def state(self) -> State | None:
        return None if self.machine is None else self.machine.state


@dataclass(order=True, slots=True)
class _Event:
    time: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class Link:
    """The fake link and its virtual clock."""

    def __init__(
        self,
        *,
        delay: float = 0.0005,
        rng: random.Random | None = None,
        wire: Callable[[Advert], Advert] | None = None,
        record_adverts: bool = True,
        route: Route | None = None,
        on_boot: Callable[[Node], None] | None = None,
    ) -> None:
        if delay < 0:
            raise SimulationError(f"propagation delay {delay} is negative")
        self.delay = delay
        self.rng = rng if rng is not None else random.Random(0)
        self.wire = wire  # e.g. encode + decode, to put a codec on the path
        self.record_adverts = record_adverts
        self.route = route  # per receiver: receive checks and unicast addressing
        self.on_boot = on_boot  # called with the fresh machine in place, before start()
        # (the simulator joins it to its vrrp_sync_group there)
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.timeline: list[TimelineEntry] = []
        self.listeners: list[Callable[[TimelineEntry], None]] = []
        self._queue: list[_Event] = []
        self._seq = 0

    # ---- set-up ---------------------------------------------------------------------

    def add_node(self, name: str, params: VrrpParams) -> Node:
        if name in self.nodes:
            raise SimulationError(f"node {name!r} already exists")
        node = Node(name, params)
        self.nodes[name] = node
        return node

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(self.nodes) or "none"
            raise SimulationError(f"unknown node {name!r} (nodes: {known})") from None

    def machine(self, name: str) -> VrrpMachine:
        m = self.node(name).machine
        if m is None:
            raise SimulationError(f"node {name!r} is down")
        return m

    # ---- scheduling inputs ----------------------------------------------------------

    def at(self, time: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at virtual ``time`` (not before now)."""
        if time < self.now:
            raise SimulationError(f"time {time} is in the past (now {self.now})")
        self._seq += 1
        heapq.heappush(self._queue, _Event(time, self._seq, fn))

    def _when(self, at: float | None) -> float:
        return self.now if at is None else at

    def start(self, name: str, at: float | None = None) -> None:
        """Boot ``name``: a fresh machine from its params, started at ``at``."""
        node = self.node(name)
        self.at(self._when(at), lambda: self._boot(node, "start"))

    def restart(self, name: str, at: float | None = None) -> None:
        node = self.node(name)
        self.at(self._when(at), lambda: self._boot(node, "restart"))

    def crash(self, name: str, at: float | None = None) -> None:
        """Power loss: the machine vanishes without a word; its VIPs go with it."""
        node = self.node(name)
        self.at(self._when(at), lambda: self._crash(node))

    def shutdown(self, name: str, at: float | None = None) -> None:
        """Graceful stop (keepalived SIGTERM): priority 0 advert, VIPs released."""
        node = self.node(name)

        def go() -> None:
            if node.machine is None:
                return
            self._record(node, "event", "shutdown")
            node.machine.shutdown(self.now)
            self._drain(node)
            node.machine = None
            node._generation += 1

        self.at(self._when(at), go)

    def reconfigure(self, name: str, params: VrrpParams, at: float | None = None) -> None:
        """A reload (SIGHUP) with new settings: applied in place by the running machine
        (VrrpMachine.reconfigure, what the daemon calls); a node that is down boots with
        them next time."""
        node = self.node(name)

        def go() -> None:
            node.params = params
            if node.machine is None:
                return
            self._record(node, "event", "reload")
            node.machine.reconfigure(self.now, params)
            self._drain(node)

        self.at(self._when(at), go)

    def set_tracked(self, name: str, item: str, ok: bool, at: float | None = None) -> None:
        node = self.node(name)

        def go() -> None:
            word = "OK" if ok else "failed"
            self._record(node, "event", f"tracked {item} {word}")
            if node.machine is None:
                return
            node.machine.set_tracked(self.now, item, ok)
            self._drain(node)

        self.at(self._when(at), go)

    def set_tracked_level(self, name: str, item: str, level: int, at: float | None = None) -> None:
        """A weighted track_file's number (VrrpMachine.set_tracked_level, as the daemon)."""
        node = self.node(name)

        def go() -> None:
            self._record(node, "event", f"tracked {item} value {level}")
            if node.machine is None:
                return
            node.machine.set_tracked_level(self.now, item, level)
            self._drain(node)

        self.at(self._when(at), go)

    def partition(self, *groups: Iterable[str], at: float | None = None) -> None:
        """Split the link: nodes hear only nodes in their own group (others: group 0)."""
        resolved = [[self.node(n) for n in g] for g in groups]

        def go() -> None:
            for node in self.nodes.values():
                node.group = 0
            for i, members in enumerate(resolved, start=1):
                for node in members:
                    node.group = i
            text = " | ".join(",".join(n.name for n in g) for g in resolved)
            self._record(None, "event", f"partition {text}")

        self.at(self._when(at), go)

    def heal(self, at: float | None = None) -> None:
        def go() -> None:
            for node in self.nodes.values():
                node.group = 0
            self._record(None, "event", "partition healed")

        self.at(self._when(at), go)

    def set_loss(self, name: str, rate: float) -> None:
        """Lose ``rate`` (0..1) of ``name``'s outgoing adverts, drawn from ``rng``."""
        if not 0.0 <= rate <= 1.0:
            raise SimulationError(f"loss rate {rate} outside 0..1")
        self.node(name).loss = rate

    def note(self, name: str | None, text: str, kind: str = "event") -> None:
        """Record an entry for ``name`` (None: the link) at the current time."""
        self._record(self.node(name) if name is not None else None, kind, text)

    # ---- running --------------------------------------------------------------------

    def run(self, until: float) -> None:
        """Process every event up to and including virtual time ``until``."""
        if until < self.now:
            raise SimulationError(f"time {until} is in the past (now {self.now})")
        queue = self._queue
        while queue and queue[0].time <= until:
            event = heapq.heappop(queue)
            self.now = event.time
            event.run()
        self.now = until

    def run_for(self, duration: float) -> None:
        self.run(self.now + duration)

    # ---- observing ------------------------------------------------------------------

    def state(self, name: str) -> State | None:
        return self.node(name).state

    def masters(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.state is State.MASTER]

    def vip_holders(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.vips]

    def transitions(self, name: str | None = None) -> list[tuple[float, str, StateChanged]]:
        """(time, node, StateChanged) for every state change, optionally of one node."""
        return [
            (e.time, e.node, e.action)
            for e in self.timeline
            if isinstance(e.action, StateChanged) and (name is None or e.node == name)
        ]

    # ---- internals ------------------------------------------------------------------

    def _record(
        self, node: Node | None, kind: str, text: str, action: Action | None = None
    ) -> None:
        entry = TimelineEntry(self.now, node.name if node else "link", kind, text, action)
        self.timeline.append(entry)
        for listener in self.listeners:
            listener(entry)

    def _boot(self, node: Node, word: str) -> None:
        if node.machine is not None:
            raise SimulationError(f"node {node.name!r} is already running")
        self._record(node, "event", word)
        node.machine = VrrpMachine(node.params)
        if self.on_boot is not None:
            self.on_boot(node)
        node.machine.start(self.now)
        self._drain(node)

    def _crash(self, node: Node) -> None:
        if node.machine is None:
            return
        self._record(node, "event", "crash" + (" (VIPs lost)" if node.vips else ""))
        node.machine = None
        node.vips.clear()
        node._generation += 1
        node._armed = None

    def _drain(self, node: Node) -> None:
        """Carry out the node's queued actions, then arm its timer."""
        machine = node.machine
        if machine is None:
            return
        for action in machine.actions():
            self._apply(node, action)
        deadline = machine.get_timer()
        if deadline != node._armed:
            node._generation += 1
            node._armed = deadline
            if deadline is not None:
                generation = node._generation
                self.at(max(deadline, self.now), lambda: self._fire(node, generation))
        group = machine.sync
        if group is not None:  # a vrrp_sync_group may have moved the other members
            for peer in self.nodes.values():
                m = peer.machine
                if m is not None and m is not machine and m.sync is group and m.pending():
                    self._drain(peer)

    def _fire(self, node: Node, generation: int) -> None:
        if node.machine is None or generation != node._generation:
            return
        node._armed = None
        node.machine.handle_timer(self.now)
        self._drain(node)

    def _apply(self, node: Node, action: Action) -> None:
        if isinstance(action, SendAdvert):
            self._send(node, action)
        elif isinstance(action, AddVips):
            node.vips.update(action.addresses)
            self._record(node, "vips", f"add VIPs {_addrs(action.addresses)}", action)
        elif isinstance(action, RemoveVips):
            node.vips.difference_update(action.addresses)
            self._record(node, "vips", f"remove VIPs {_addrs(action.addresses)}", action)
        elif isinstance(action, SendGratuitous):
            text = f"gratuitous ARP/NA {_addrs(action.addresses)} x{action.repeat}"
            self._record(node, "garp", text, action)
        elif isinstance(action, RunNotify):
            self._record(node, "notify", f"notify {action.state}", action)
        elif isinstance(action, StateChanged):
            text = f"{action.old} -> {action.new}: {action.reason}"
            self._record(node, "state", text, action)
        elif isinstance(action, PriorityChanged):
            text = f"priority {action.old} -> {action.new}: {action.reason}"
            self._record(node, "priority", text, action)
        elif isinstance(action, GroupStateChanged):
            text = f"vrrp_sync_group {action.group} {action.old} -> {action.new}: {action.reason}"
            self._record(node, "group", text, action)
        elif isinstance(action, MasterRxLowerPri):
            text = f"notify MASTER_RX_LOWER_PRI (advert from {action.source}, {action.priority})"
            self._record(node, "notify", text, action)

    def _send(self, node: Node, action: SendAdvert) -> None:
        advert = action.advert
        if self.record_adverts:
            self._record(node, "advert", f"advert priority {advert.priority}", action)
        if node.loss and self.rng.random() < node.loss:
            self._record(node, "drop", f"advert priority {advert.priority} lost")
            return
        if self.wire is not None:
            advert = self.wire(advert)
        source = node.address
        for peer in self.nodes.values():
            if peer is node or peer.machine is None or peer.group != node.group:
                continue
            delivered = advert
            if self.route is not None:
                routed = self.route(node, peer, advert)
                if routed is None:
                    continue
                if isinstance(routed, str):
                    if self.record_adverts:
                        self._record(peer, "discard", f"advert from {node.name}: {routed}")
                    continue
                delivered = routed
            self.at(self.now + self.delay, self._deliverer(peer, delivered, source))

    def _deliverer(self, peer: Node, advert: Advert, source: IPAddress) -> Callable[[], None]:
        def deliver() -> None:
            if peer.machine is None:
                return
            peer.machine.receive_advert(self.now, advert, source)
            self._drain(peer)

        return deliver


def _addrs(addresses: tuple[IPAddress, ...]) -> str:
    return ",".join(str(a) for a in addresses)
