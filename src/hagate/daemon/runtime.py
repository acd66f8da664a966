"""One running instance: its state machine, timer, action execution and counters.

The machine is sans-IO; this is the thin glue. Inputs (packets, timer, tracked items) call
the machine with ``now = loop.time()`` and then :meth:`InstanceRuntime.drain`, which executes
the queued actions and re-arms the single ``loop.call_at`` timer from ``get_timer()``.
Adverts and notifies are immediate; VIP changes and GARPs go through a per-instance queue
worked in order (netlink is asynchronous, and a GARP must follow its VIP).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hagate.config import model as cfg
from hagate.daemon.firewall import VipFirewall
from hagate.daemon.garp import GarpSender
from hagate.daemon.netlink import Netlink, NetlinkFailure, Vip
from hagate.daemon.notify import Notifier
from hagate.daemon.plan import InstancePlan
from hagate.daemon.sockets import Prepared, VrrpSocket
from hagate.vrrp.actions import (
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
from hagate.vrrp.advert import Advert
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.packet import encode
from hagate.vrrp.receive import Accepted, Discarded, check_packet
from hagate.vrrp.state import State

log = logging.getLogger("hagate.vrrp")

IPAddr = IPv4Address | IPv6Address
_EARLY = 0.0005  # seconds: a timer this close to its deadline fires it


@dataclass(frozen=True, slots=True)
class SyncRoutes:
    """A reload changed virtual_routes / virtual_rules: a master removes the ones gone and
    adds the new ones, in place (no transition, the others untouched)."""


_VipJob = AddVips | RemoveVips | SendGratuitous | SyncRoutes | None
_PacketKey = tuple[bytes, IPAddr, IPAddr, int | None]  # payload, source, destination, TTL
HISTORY = 32  # recent transitions kept per instance for the status socket (the console)


@dataclass(slots=True)
class Transition:
    at: float  # wall clock (time.time())
    old: str
    new: str
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"at": self.at, "old": self.old, "new": self.new, "reason": self.reason}


@dataclass(slots=True)
class Heard:
    """The last advert heard from the master while BACKUP: when (loop time, turned into
    wall-clock seconds for the status socket), from where, at which priority."""

    at: float  # loop time
    source: IPAddr
    priority: int


@dataclass(frozen=True, slots=True)
class Host:
    """The shared live objects an instance uses."""

    loop: asyncio.AbstractEventLoop
    netlink: Netlink
    garp: GarpSender
    notifier: Notifier
    garp_interval: float = 0.0
    gna_interval: float = 0.0
    firewall: VipFirewall | None = None  # no_accept VIPs blocked while master


# What a reload may change in place (the rest, VRID/interface/family, restarts).
_PLAN_KEYS = (
    *("source", "destinations", "multicast", "params", "receive"),
    *("vips", "excluded", "notify", "scripts", "interfaces", "unicast_ttl", "routes", "rules"),
    "block_vips",
)


def _targets(sock: VrrpSocket, plan: InstancePlan) -> list[Prepared]:
    return [sock.prepare(plan.source, d, plan.send_ttl) for d in plan.destinations]


class InstanceRuntime:
    """Drives one :class:`VrrpMachine` on one socket."""

    def __init__(self, plan: InstancePlan, sock: VrrpSocket, host: Host, mac: bytes) -> None:
        self.plan = plan
        self.name = plan.name
        self.sock = sock
        self.host = host
        self.mac = mac
        self.machine = VrrpMachine(plan.params)
        self._loop = host.loop
        self._targets: list[Prepared] = _targets(sock, plan)
        self._wire_for: Advert | None = None
        self._wire: list[bytes] = []
        self._accepted: tuple[_PacketKey, Advert] | None = None  # last accepted, decoded
        self._rejected: tuple[_PacketKey, Discarded] | None = None  # last discarded
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._vips = {v.address: v for v in plan.all_vips}
        self._held: dict[IPAddr, Vip] = {}  # what we added, as added (removal uses this)
        # virtual_routes / virtual_rules installed (or found present) while master
        self._routes: list[cfg.VirtualRoute] = []
        self._rules: list[cfg.VirtualRule] = []
        self._excluded = tuple(v.address for v in plan.excluded)
        self._jobs: asyncio.Queue[_VipJob] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.waiting: set[str] = set()  # weight-0 scripts without a first result
        # vrrp_startup_delay runs until this loop time: the daemon's start plus the delay
        # for the instances it starts with, 0 for one a reload adds (keepalived: at boot)
        self.delay_until = 0.0
        self.peers: tuple[InstanceRuntime, ...] = ()  # the other members of its sync group
        self.started = False
        self.adverts_in = 0
        self.adverts_out = 0
        self.garps_sent = 0
        self.transitions = 0
        # keepalived's vrrp_stats that hagate's counters do not already give
        self.become_master = 0
        self.release_master = 0
        self.pri_zero_rcvd = 0
        self.pri_zero_sent = 0
        self.discards: Counter[str] = Counter()
        self.last: Transition | None = None
        # the last HISTORY transitions, oldest first: a console started later still sees
        # the failovers before it, and several changes between two of its polls
        self.history: deque[Transition] = deque(maxlen=HISTORY)
        self.heard: Heard | None = None

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Leave INITIALIZE (the driver calls this once the weight-0 scripts reported)."""
        if self.started:
            return
        self.started = True
        if self._worker is None:
            self._worker = self._loop.create_task(self._work())
        now = self._loop.time()
        self.machine.start(now, delay=max(0.0, self.delay_until - now))
        self.drain()

    def ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = self._loop.create_task(self._work())

    async def stop(self, timeout: float = 2.0, deleted: bool = False) -> None:
        """Shutdown: priority-0 advert if master, VIPs removed, notify STOP (``deleted``: a
        reload removed the instance, notify DELETED / FAULT as keepalived)."""
        if self.started:
            self.machine.shutdown(self._loop.time(), deleted=deleted)
            self.drain()
        self._cancel_timer()
        if self._worker is not None:
            self._jobs.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout)
            except TimeoutError:
                log.warning("%s: VIP removal did not finish in %.0f s", self.name, timeout)
                self._worker.cancel()
            self._worker = None

    # ---- inputs -----------------------------------------------------------------------

    def receive(self, src: IPAddr, dst: IPAddr, ttl: int | None, payload: bytes) -> None:
        # A master repeats the same octets every interval: the verdict of check_packet (a
        # pure function of these facts and our fixed ReceiveParams) for the last accepted
        # packet is kept, so the repeats skip decoding and the checksum.
        # The same holds for the last discarded packet: a flood of one invalid packet costs
        # a comparison each, not a decode.
        key = (payload, src, dst, ttl)
        cached = self._accepted
        if cached is not None and cached[0] == key:
            advert = cached[1]
        else:
            rejected = self._rejected
            if rejected is not None and rejected[0] == key:
                self.discards[rejected[1].reason.value] += 1
                return
            result = check_packet(self.plan.receive, src, dst, ttl, payload)
            if not isinstance(result, Accepted):
                self._rejected = (key, result)
                self._discard(src, result)
                return
            advert = result.advert
            self._accepted = (key, advert)
        self.adverts_in += 1
        if advert.priority == 0:
            self.pri_zero_rcvd += 1
        if self.started:
            now = self._loop.time()
            machine = self.machine
            machine.receive_advert(now, advert, src)
            if machine.state is State.BACKUP and machine.master_address == src:
                heard = self.heard
                if heard is not None and heard.source == src and heard.priority == advert.priority:
                    heard.at = now  # the master's repeats: one store, no allocation
                else:
                    self.heard = Heard(now, src, advert.priority)
            self.drain()

    def _discard(self, src: IPAddr, result: Discarded) -> None:
        reason = result.reason.value
        first = reason not in self.discards
        self.discards[reason] += 1
        if first:
            log.warning(
                "%s: discarding advert from %s: %s (%s)", self.name, src, reason, result.detail
            )

    def address_gone(self, address: IPAddr) -> None:
        """One of our VIPs was deleted by someone else (RTM_DELADDR): keepalived leaves
        MASTER at once and is back after Skew_Time with every VIP re-added."""
        if not self.started or self.machine.state is not State.MASTER:
            return
        log.warning("%s: virtual address %s was deleted from under us", self.name, address)
        self.machine.vip_lost(self._loop.time(), address)
        self.drain()

    def rebind(self, sock: VrrpSocket, mac: bytes) -> None:
        """The interface came back with a new index (deleted and re-created): send through
        the new socket, from the new MAC."""
        self.sock = sock
        self.mac = mac
        self._targets = _targets(sock, self.plan)

    def reconfigure(self, plan: InstancePlan) -> None:
        """A reload changed this instance's settings but not its VRID, interface or family:
        apply them without a transition (VrrpMachine.reconfigure); VIPs that stay are never
        touched. Excluded VIPs that changed are added/removed here while master."""
        old = self.plan
        self.plan = plan
        self._targets = _targets(self.sock, plan)
        self._wire_for = None
        self._accepted = self._rejected = None  # the receive checks may have changed
        fresh = {v.address: v for v in plan.all_vips}
        # the same address with another dev/label/brd/scope: removed as it was, re-added
        moved = tuple(a for a, v in fresh.items() if a in self._vips and self._vips[a] != v)
        self._vips = {**self._vips, **fresh}
        old_excluded, self._excluded = self._excluded, tuple(v.address for v in plan.excluded)
        if self.machine.state is State.MASTER and moved:
            self._jobs.put_nowait(RemoveVips(moved))
            self._jobs.put_nowait(AddVips(moved))
            self._jobs.put_nowait(SendGratuitous(moved, plan.params.garp_master_repeat))
        if self.machine.state is State.MASTER:
            gone = tuple(a for a in old_excluded if a not in self._excluded)
            new = tuple(a for a in self._excluded if a not in old_excluded)
            if gone:
                self._jobs.put_nowait(RemoveVips(gone))
            if new:
                self._jobs.put_nowait(AddVips(()))  # adds every excluded VIP
                self._jobs.put_nowait(SendGratuitous(new, plan.params.garp_master_repeat))
        if (old.routes, old.rules, old.block_vips) != (plan.routes, plan.rules, plan.block_vips):
            self._jobs.put_nowait(SyncRoutes())
        self.machine.reconfigure(self._loop.time(), plan.params)
        changed = [k for k in _PLAN_KEYS if getattr(old, k) != getattr(plan, k)]
        log.info("%s: reloaded in place (%s), still %s", self.name, ", ".join(changed) or
                 "no change", self.machine.state)  # fmt: skip
        if self.started:
            self.drain()

    def set_tracked_level(self, item: str, level: int) -> None:
        """A weighted track_file's number (its level x weight goes into the priority)."""
        try:
            self.machine.set_tracked_level(self._loop.time(), item, level)
        except ValueError as exc:
            log.debug("%s: %s", self.name, exc)
            return
        if self.started:
            self.drain()
        else:
            self.machine.actions()

    def set_tracked(self, item: str, ok: bool) -> None:
        try:
            self.machine.set_tracked(self._loop.time(), item, ok)
        except ValueError as exc:
            log.debug("%s: %s", self.name, exc)
            return
        if self.started:
            self.drain()
        else:
            self.machine.actions()  # PriorityChanged before start: nothing to do

    def _fire(self) -> None:
        self._handle = None
        self._armed = None
        deadline = self.machine.get_timer()
        if deadline is None:
            return
        now = self._loop.time()
        if deadline > now + _EARLY:
            self._arm(deadline)  # the deadline moved later since we armed: sleep on
            return
        self.machine.handle_timer(max(now, deadline))  # call_at may run a hair early
        self.drain()

    # ---- outputs ----------------------------------------------------------------------

    def drain(self) -> None:
        """Execute every queued action, then re-arm the timer."""
        machine = self.machine
        action = machine.next_action()
        while action is not None:
            if isinstance(action, SendAdvert):
                self._send(action.advert)
            elif isinstance(action, StateChanged):
                self._changed(action)
            elif isinstance(action, RunNotify | GroupStateChanged | MasterRxLowerPri):
                self.host.notifier.on_action(action, self.plan, machine)
            elif isinstance(action, PriorityChanged):
                log.info(
                    "%s: priority %d -> %d: %s", self.name, action.old, action.new, action.reason
                )
                self.host.notifier.on_action(action, self.plan, machine)
            else:
                self._jobs.put_nowait(action)
            action = machine.next_action()
        self._rearm()
        for peer in self.peers:  # a sync group moved them too
            if peer.machine.pending():
                peer.drain()

    def _rearm(self) -> None:
        """Keep one ``call_at`` per instance. A deadline that moved *later* (a backup
        hearing its master) keeps the armed handle, which re-arms when it fires: one timer
        operation per Master_Down_Interval instead of one per advert."""
        when = self.machine.get_timer()
        armed = self._armed
        if when is None:
            if armed is not None:
                self._cancel_timer()
            return
        if armed is not None and armed <= when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._arm(when)

    def _arm(self, when: float) -> None:
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _cancel_timer(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed = None

    def _send(self, advert: Advert) -> None:
        if advert != self._wire_for:
            v3_as_v2 = self.plan.receive.v3_checksum_as_v2
            self._wire = [
                encode(advert, self.plan.source, t.dst, v3_checksum_as_v2=v3_as_v2)
                for t in self._targets
            ]
            self._wire_for = advert
        send = self.sock.send_prepared
        for payload, target in zip(self._wire, self._targets, strict=True):
            if send(payload, target):
                self.adverts_out += 1
                if advert.priority == 0:
                    self.pri_zero_sent += 1

    def _changed(self, action: StateChanged) -> None:
        self.transitions += 1
        if action.new is State.MASTER:
            self.become_master += 1
        elif action.old is State.MASTER:
            self.release_master += 1
        self.last = Transition(time.time(), str(action.old), str(action.new), action.reason)
        self.history.append(self.last)
        level = logging.INFO if action.new is not State.FAULT else logging.WARNING
        log.log(level, "%s: %s -> %s: %s", self.name, action.old, action.new, action.reason)

    # ---- VIPs and GARPs, in order -----------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            try:
                if isinstance(job, AddVips):
                    await self._add(job)
                elif isinstance(job, RemoveVips):
                    await self._remove(job)
                elif isinstance(job, SyncRoutes):
                    await self._sync_firewall()
                    await self._sync_routes()
                else:
                    await self._gratuitous(job)
            except Exception:  # keep the worker alive whatever happens
                log.exception("%s: error carrying out %s", self.name, job)

    def _vip(self, address: IPAddr) -> Vip:
        vip = self._vips.get(address)
        if vip is None:
            prefix = 32 if address.version == 4 else 128
            vip = Vip(address, prefix, self.plan.interface)
        return vip

    async def _sync_firewall(self, adding: tuple[IPAddr, ...] = ()) -> None:
        """Block exactly the VIPs held (and about to be added) while master, if no_accept
        (keepalived vrrp_handle_accept_mode: blocked before they are added, unblocked once
        removed)."""
        firewall = self.host.firewall
        if firewall is None:
            return
        master = bool(adding) or self.machine.state is State.MASTER
        want = (*self._held, *adding) if self.plan.block_vips and master else ()
        await firewall.hold(self.name, want)

    async def _add(self, job: AddVips) -> None:
        await self._sync_firewall((*job.addresses, *self._excluded))
        for address in (*job.addresses, *self._excluded):
            vip = self._vip(address)
            try:
                await self.host.netlink.add_vip(vip)
            except NetlinkFailure as exc:
                log.error("%s: %s", self.name, exc)
                continue
            self._held[address] = vip
        await self._sync_routes(again=True)

    async def _sync_routes(self, again: bool = False) -> None:
        """Hold exactly the plan's routes and rules while master, none otherwise. keepalived
        (vrrp_state_become_master) adds addresses, then routes, then rules, and removes
        them in the reverse order (a route with a VIP as ``src`` needs the VIP).

        ``again`` (VIPs were just added): request every route and rule even if held, since
        the kernel drops a route whose ``src`` address went away meanwhile (present ones
        answer EEXIST, which counts as held)."""
        master = self.machine.state is State.MASTER
        want_routes = self.plan.routes if master else ()
        want_rules = self.plan.rules if master else ()
        netlink = self.host.netlink
        for rule in [r for r in self._rules if r not in want_rules]:
            await self._quiet(netlink.remove_rule(rule))
            self._rules.remove(rule)
        for route in [r for r in self._routes if r not in want_routes]:
            await self._quiet(netlink.remove_route(route))
            self._routes.remove(route)
        for route in want_routes:
            held = route in self._routes
            if (again or not held) and await self._quiet(netlink.add_route(route)) and not held:
                self._routes.append(route)
        for rule in want_rules:
            held = rule in self._rules
            if (again or not held) and await self._quiet(netlink.add_rule(rule)) and not held:
                self._rules.append(rule)

    async def _quiet(self, request: Awaitable[bool]) -> bool:
        """Carry out one route/rule request; a failure is logged (True: now in place)."""
        try:
            await request
        except NetlinkFailure as exc:
            log.error("%s: %s", self.name, exc)
            return False
        return True

    async def _remove(self, job: RemoveVips) -> None:
        # Still master: a reload dropped these VIPs only; the excluded ones stay.
        keep = self.machine.state is State.MASTER
        if not keep:
            await self._sync_routes()  # routes and rules go before the addresses
        for address in (*job.addresses, *(() if keep else self._excluded)):
            try:
                await self.host.netlink.remove_vip(self._held.pop(address, self._vip(address)))
            except NetlinkFailure as exc:
                log.error("%s: %s", self.name, exc)
        await self._sync_firewall()

    async def _gratuitous(self, job: SendGratuitous) -> None:
        if self.machine.state is not State.MASTER:
            return  # left MASTER meanwhile: do not announce addresses we no longer hold
        addresses = (*job.addresses, *self._excluded)
        for _ in range(job.repeat):
            for address in addresses:
                vip = self._vip(address)
                if self.host.garp.send(vip.dev, self.mac, address):
                    self.garps_sent += 1
                gap = self.host.garp_interval if address.version == 4 else self.host.gna_interval
                if gap > 0:
                    await asyncio.sleep(gap)

    # ---- status -----------------------------------------------------------------------

    def snapshot(self, scripts: list[dict[str, object]]) -> dict[str, object]:
        from hagate.daemon.monitor import stats_of  # not on the start path

        m = self.machine
        if m.state is State.MASTER:
            master: str | None = str(self.plan.source)
        elif m.state is State.BACKUP and m.master_address is not None:
            master = str(m.master_address)
        else:
            master = None
        last = self.last
        heard = self.heard
        return {
            "name": self.name,
            "vrid": self.plan.params.vrid,
            "interface": self.plan.interface,
            "version": self.plan.params.version,
            "family": self.plan.family,
            "state": str(m.state),
            "base_priority": m.base_priority,
            "effective_priority": m.effective_priority,
            "master": master,
            "source": str(self.plan.source),
            "mode": "multicast" if self.plan.multicast else "unicast",
            "vips": [str(v.address) + f"/{v.prefixlen}" for v in self.plan.vips],
            "excluded_vips": [str(v.address) + f"/{v.prefixlen}" for v in self.plan.excluded],
            "last_transition": None if last is None else last.as_json(),
            "history": [t.as_json() for t in self.history],
            "heard_master": None
            if heard is None
            else {  # wall clock, as every time here ("at" of the loop's now, not monotonic)
                "at": round(time.time() - (self._loop.time() - heard.at), 6),
                "from": str(heard.source),
                "priority": heard.priority,
            },
            "counters": {
                "adverts_in": self.adverts_in,
                "adverts_out": self.adverts_out,
                "garps_sent": self.garps_sent,
                "transitions": self.transitions,
                "priority_zero_unanswered": m.counters.priority_zero_unanswered,
                "become_master": self.become_master,
                "release_master": self.release_master,
                "priority_zero_in": self.pri_zero_rcvd,
                "priority_zero_out": self.pri_zero_sent,
                "discards": dict(self.discards),
            },
            "scripts": scripts,
            "keepalived": {  # keepalived's vrrp_stats and VIP lines (daemon.exporter)
                **stats_of(self),
                "garp_delay": self.plan.params.garp_master_delay,
                "vips": [[f"{v.address}/{v.prefixlen}", v.dev] for v in self.plan.vips],
                "evips": [[f"{v.address}/{v.prefixlen}", v.dev] for v in self.plan.excluded],
            },
        }
