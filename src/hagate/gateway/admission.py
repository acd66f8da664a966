"""Admission: accepting connections and bounding TLS handshakes so a flood cannot deny service.

Three budgets, each against a different attack, and one rule for a storm of honest clients:

* **in progress, globally** (``max_total``): bounds the memory a handshake flood can take.
  When it is full, the oldest incomplete handshake *stalled before its client said hello*
  (or stalled after it for ``stall_grace``) is evicted to admit the newcomer, so clients
  that never finish cannot hold the door shut. A handshake that waits for *our* CPU
  (queued in the budget below), or whose client answered and is only slow, is not evicted:
  that throws away work done or about to be done, and in a reconnection storm of 10,000
  agents the oldest handshakes are exactly the ones next in line (evicting them made the
  storm a livelock: everybody redialled, few finished). Without a victim the newcomer is
  *parked*: held as a bare socket, no TLS state, until a slot frees;
* **in progress, per address** (``max_per_address``): one address cannot take every slot.
  Beyond it, a connection from an address whose handshakes all wait for clients that never
  said hello is closed at once (slow or hostile: it redials); one from an address with real
  clients (the devices of a site behind one NAT address, a fleet in one namespace) is
  parked instead of reset (a reset costs the client a new connection, its TLS work and a
  back-off);
* **CPU per event-loop turn** (:class:`FairBudget`): at most ``per_turn`` handshake steps
  (~1.5 ms each with OpenSSL 3) run per loop turn, taken round-robin over client addresses,
  so ten flooding addresses get ten shares and a device or user on its own address one share
  of its own, instead of waiting behind the whole flood; pings and streams keep flowing.

Parked connections are bounded too (``max_parked``; beyond it a newcomer is refused) and are
started round-robin over addresses, oldest first within one, as slots free. One whose client
has given up meanwhile (it closed: FIN or reset, read from the kernel's TCP state with one
``getsockopt``, :func:`client_gone`) is dropped unstarted when its turn comes: the CPU goes
to a client that is still there, and no clock has to guess how long clients wait. Every
decision looks at no more than ``SCAN`` handshakes: the cost per connection stays constant
in a storm.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

log = logging.getLogger("hagate.gateway")

Handler = Callable[[socket.socket, tuple[str, int]], Coroutine[Any, Any, None]]

TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # include/net/tcp_states.h


def client_gone(sock: socket.socket) -> bool:
    """Whether the client of an accepted connection has closed it (FIN) or reset it.

    ``TCP_INFO``'s first byte is the connection's state: CLOSE_WAIT once the client's FIN
    came (even with its ClientHello still unread before it), CLOSE after a reset. Anything
    that is not a TCP socket on Linux (the tests' memory sockets) counts as present.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except (OSError, AttributeError, ValueError):
        return False
    return bool(info) and info[0] in (TCP_CLOSE, TCP_CLOSE_WAIT)


class FairBudget:
    """At most ``per_turn`` expensive steps per event-loop turn, round-robin over addresses."""

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self.used = 0
        self.queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._scheduled = False

    def for_peer(self, peer: str) -> _PeerBudget:
        return _PeerBudget(self, peer)

    async def acquire(self, peer: str) -> None:
        if self.used < self.per_turn and not self.queues:
            self.used += 1
            self._schedule()
            return
        fut = asyncio.get_running_loop().create_future()
        queue = self.queues.get(peer)
        if queue is None:
            queue = self.queues[peer] = deque()
        queue.append(fut)
        self._schedule()
        await fut

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._scheduled = False
        self.used = 0
        queues = self.queues
        while queues and self.used < self.per_turn:
            peer, queue = next(iter(queues.items()))
            fut = queue.popleft()
            if queue:
                queues.move_to_end(peer)  # round-robin: this address waits for the others
            else:
                del queues[peer]
            if not fut.done():  # a cancelled waiter (timeout, eviction) gives its turn away
                fut.set_result(None)
                self.used += 1
        if queues or self.used:
            self._schedule()


@dataclass(slots=True)
class _PeerBudget:
    """The budget as one connection's handshake sees it (``Conn.handshake(budget)``)."""

    budget: FairBudget
    peer: str

    async def acquire(self) -> None:
        await self.budget.acquire(self.peer)


@dataclass(eq=False, slots=True)
class Ticket:
    """One handshake in progress; ``close`` is how eviction ends it.

    ``on_peer``: the handshake waits for its client (not queued for our CPU), since
    ``since``; set by the budget wrapper from :meth:`paced`, which every step goes through.
    """

    peer: str
    close: Callable[[], None]
    admission: Admission | None = None
    done: bool = False
    on_peer: bool = True
    since: float = 0.0
    tls: ssl.SSLSocket | None = None
    # Admitted from the park and not started yet (its task resumes in a later loop turn):
    # it has not had a chance to read its hello, which says nothing about its client.
    woken: bool = False

    def paced(self, budget: FairBudget, tls: ssl.SSLSocket | None = None) -> _TicketBudget:
        """The budget for ``Conn.handshake``, telling the admission where this one waits."""
        self.tls = tls
        if self.woken:
            self.woken = False
            if self.admission is not None:
                self.admission.woken_now -= 1
        return _TicketBudget(budget, self)

    def progressed(self) -> bool:
        """The client's hello came and we answered it (a cipher is chosen): a client that
        is slow (or far) is still a client, unlike a connection that never said hello."""
        return self.tls is not None and self.tls.cipher() is not None

    def unproven(self) -> bool:
        """Not (yet) known to be a client: started, and no hello answered. A ticket just
        woken from the park is not suspect: a storm's slots are full of those right after
        a wake, and reading them as hello-less once refused newcomers of a fleet's address
        and evicted work the gateway was about to do (the agents paid a redial each)."""
        return not self.woken and not self.progressed()


@dataclass(slots=True)
class _TicketBudget:
    budget: FairBudget
    ticket: Ticket

    async def acquire(self) -> None:
        t, adm = self.ticket, self.ticket.admission
        if adm is not None and not t.done:
            adm.queued(t)
        try:
            await self.budget.acquire(t.peer)
        finally:
            if adm is not None and not t.done:
                adm.on_peer(t)  # the step runs now, then the handshake waits for its client


@dataclass(eq=False, slots=True)
class _Parked:
    peer: str
    future: asyncio.Future[Ticket | None]
    close: Callable[[], None]
    since: float = 0.0
    gone: Callable[[], bool] | None = None


SCAN = 16  # stalled handshakes looked at per decision (bounded work per connection)


@dataclass
class Admission:
    max_total: int = 2048
    max_per_address: int = 256
    max_parked: int = 16384
    stall_grace: float = 2.0  # a client that answered hello may stall this long when full
    # A connection parked longer is closed when its turn comes instead of started. One whose
    # client left is dropped at its turn anyway (client_gone), so this only bounds how long
    # a client may be kept waiting: below the agents' 30 s handshake patience, so that a
    # storm's agents are served once, in order, instead of expiring at 6 s by the thousand
    # and redialling behind everybody.
    max_park_s: float = 25.0
    # Little's law on our CPU: at most 2 x (handshakes completed per second) x target_s
    # handshakes *waiting for our CPU* (queued in the budget, or woken and about to be), so
    # an admitted handshake's steps wait about 2 x target_s at most however hard the storm;
    # the rest wait parked, costing nothing. (2,048 queued at 250/s meant 8 s per handshake
    # on a loaded node: clients gave up on work the gateway then did anyway.) Handshakes
    # that wait for their *client* are not counted (only ``max_total`` bounds them): when
    # they were, a storm's agents, slow to answer on a loaded machine, held every slot and
    # the new master idled at a third of a core with thousands parked. The factor 2 is the
    # headroom that lets the limit grow while handshakes finish faster than that.
    target_s: float = 1.0
    min_inflight: int = 128
    rate: float = 0.0  # completed handshakes per second (per-second buckets, smoothed)
    _bucket_start: float = 0.0
    _bucket: int = 0
    inflight: OrderedDict[int, Ticket] = field(default_factory=OrderedDict)
    per_address: Counter[str] = field(default_factory=Counter)
    # tickets waiting for their client, oldest first (all, and per address); the others
    # wait in the budget for our CPU (counted per address in busy_of)
    stalled: OrderedDict[int, Ticket] = field(default_factory=OrderedDict)
    stalled_of: dict[str, OrderedDict[int, Ticket]] = field(default_factory=dict)
    busy_of: Counter[str] = field(default_factory=Counter)
    busy_now: int = 0  # sum of busy_of
    woken_now: int = 0  # tickets woken from the park whose task has not started yet
    parked: OrderedDict[str, deque[_Parked]] = field(default_factory=OrderedDict)
    parked_now: int = 0
    evicted: int = 0
    refused: int = 0
    parked_total: int = 0
    expired: int = 0  # parked past max_park_s, closed unstarted
    abandoned: int = 0  # parked, and the client left before its turn: closed unstarted

    async def enter(
        self, peer: str, close: Callable[[], None], gone: Callable[[], bool] | None = None
    ) -> Ticket | None:
        """A ticket for a new handshake; parked while that is a storm, not a flood.

        At the address's cap: refused (None, counted) when every handshake of that address
        waits for a client that never said hello (slow or hostile: it redials), else parked
        (its clients are real, only waiting for our CPU or slow). Every slot taken: the
        oldest handshake stalled before hello (or stalled after it for ``stall_grace``) is
        evicted, else the newcomer is parked. ``gone`` tells whether a parked connection's
        client has left meanwhile (:func:`client_gone`): then it is not started (None).
        """
        if self.per_address[peer] >= self.max_per_address:
            if not self.busy_of[peer] and not self._answered(peer):
                self.refused += 1
                return None
            return await self._park(peer, close, gone)
        if len(self.inflight) >= self.max_total:
            victim = self._victim(time.monotonic())
            if victim is None:
                return await self._park(peer, close, gone)
            self._evict(victim)
        elif self.cpu_queue() >= self.limit():
            return await self._park(peer, close, gone)  # more would only wait longer for our CPU
        return self._admit(peer, close)

    def cpu_queue(self) -> int:
        """Handshakes whose next step waits for our CPU (or that are about to start)."""
        return self.busy_now + self.woken_now

    def limit(self) -> int:
        """Handshakes waiting for our CPU before newcomers are parked (<= ``max_total``)."""
        grown = int(2 * self.rate * self.target_s)
        return min(self.max_total, max(self.min_inflight, grown))

    def _completed(self, now: float) -> None:
        if now - self._bucket_start >= 1.0:
            elapsed = now - self._bucket_start
            fresh = self._bucket / elapsed if elapsed < 2.0 else 0.0
            self.rate = fresh if fresh > self.rate else 0.5 * (self.rate + fresh)
            self._bucket_start, self._bucket = now, 0
        self._bucket += 1

    def _answered(self, peer: str) -> bool:
        """Whether one of the newest stalled handshakes of ``peer`` got past hello."""
        mine = self.stalled_of.get(peer)
        if not mine:
            return False
        return any(not t.unproven() for t in islice(reversed(mine.values()), SCAN))

    def _victim(self, now: float) -> Ticket | None:
        """The oldest stalled handshake without a hello, or one stalled past the grace."""
        oldest: Ticket | None = None
        for t in islice(self.stalled.values(), SCAN):
            oldest = oldest or t
            if t.unproven():
                return t
        if oldest is not None and now - oldest.since >= self.stall_grace:
            return oldest
        return None

    def _evict(self, ticket: Ticket) -> None:
        self._forget(ticket)
        self.evicted += 1
        ticket.close()

    def _admit(self, peer: str, close: Callable[[], None]) -> Ticket:
        ticket = Ticket(peer, close, self, since=time.monotonic())
        key = id(ticket)
        self.inflight[key] = ticket
        self._stall(ticket)
        self.per_address[peer] += 1
        return ticket

    def _stall(self, ticket: Ticket) -> None:
        key = id(ticket)
        self.stalled[key] = ticket
        mine = self.stalled_of.get(ticket.peer)
        if mine is None:
            mine = self.stalled_of[ticket.peer] = OrderedDict()
        mine[key] = ticket

    def _unstall(self, ticket: Ticket) -> None:
        key = id(ticket)
        if self.stalled.pop(key, None) is not None:
            mine = self.stalled_of[ticket.peer]
            del mine[key]
            if not mine:
                del self.stalled_of[ticket.peer]

    async def _park(
        self, peer: str, close: Callable[[], None], gone: Callable[[], bool] | None = None
    ) -> Ticket | None:
        if self.parked_now >= self.max_parked:
            self.refused += 1
            return None
        fut: asyncio.Future[Ticket | None] = asyncio.get_running_loop().create_future()
        entry = _Parked(peer, fut, close, time.monotonic(), gone)
        queue = self.parked.get(peer)
        if queue is None:
            queue = self.parked[peer] = deque()
        queue.append(entry)
        self.parked_now += 1
        self.parked_total += 1
        try:
            return await fut
        except asyncio.CancelledError:  # the gateway stops: leave the queue, or the slot
            if fut.done() and not fut.cancelled() and (ticket := fut.result()) is not None:
                self.release(ticket)
            else:
                self._unpark(entry)
            raise

    def _unpark(self, entry: _Parked) -> None:
        queue = self.parked.get(entry.peer)
        if queue is not None and entry in queue:
            queue.remove(entry)
            self.parked_now -= 1
            if not queue:
                del self.parked[entry.peer]

    def queued(self, ticket: Ticket) -> None:
        """``ticket`` waits in the budget: for our CPU, not for its client."""
        if ticket.on_peer:
            ticket.on_peer = False
            self._unstall(ticket)
            self.busy_of[ticket.peer] += 1
            self.busy_now += 1

    def on_peer(self, ticket: Ticket) -> None:
        """``ticket`` got its turn; after the step it waits for its client again."""
        if not ticket.on_peer:
            ticket.on_peer = True
            ticket.since = time.monotonic()
            self._stall(ticket)
            self._not_busy(ticket.peer)
            if self.parked:
                self._wake()  # the CPU queue is one shorter: room for a parked one?

    def release(self, ticket: Ticket) -> None:
        if self.inflight.pop(id(ticket), None) is not None:
            tls = ticket.tls
            if tls is not None and tls.version() is not None:  # the handshake completed
                self._completed(time.monotonic())
            self._forget(ticket)
        self._wake()

    def _not_busy(self, peer: str) -> None:
        self.busy_now -= 1
        self.busy_of[peer] -= 1
        if self.busy_of[peer] <= 0:
            del self.busy_of[peer]

    def _forget(self, ticket: Ticket) -> None:
        ticket.done = True
        ticket.tls = None
        if ticket.woken:
            ticket.woken = False
            self.woken_now -= 1
        self.inflight.pop(id(ticket), None)
        self._unstall(ticket)
        if not ticket.on_peer:
            ticket.on_peer = True
            self._not_busy(ticket.peer)
        self.per_address[ticket.peer] -= 1
        if self.per_address[ticket.peer] <= 0:
            del self.per_address[ticket.peer]

    def _wake(self) -> None:
        """Start parked connections, round-robin over addresses, while slots are free."""
        parked = self.parked
        skipped = 0
        now = time.monotonic()
        room = self.limit()
        while (
            parked
            and len(self.inflight) < self.max_total
            and self.cpu_queue() < room
            and skipped < len(parked)
        ):
            peer, queue = next(iter(parked.items()))
            if self.per_address[peer] >= self.max_per_address:
                parked.move_to_end(peer)
                skipped += 1
                continue
            entry = queue.popleft()
            self.parked_now -= 1
            if queue:
                parked.move_to_end(peer)
            else:
                del parked[peer]
            skipped = 0
            if entry.future.done():
                continue
            if entry.gone is not None and entry.gone():
                self.abandoned += 1
                entry.future.set_result(None)  # the client left: closed by the caller
                continue
            if now - entry.since > self.max_park_s:
                self.expired += 1
                self.refused += 1
                entry.future.set_result(None)  # closed by the caller; nothing to undo here
                continue
            ticket = self._admit(peer, entry.close)
            ticket.woken = True
            self.woken_now += 1
            entry.future.set_result(ticket)

    def parked_count(self) -> int:
        return self.parked_now


ACCEPT_PAUSE_S = 1.0  # how long a listener rests after accept() ran out of resources


class Acceptor:
    """Accepts on a listening socket and hands each connection to ``handler`` in a task."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.loop = loop
        self.spawn = spawn
        self.accept_pauses = 0  # times accept() failed and the listener paused

    def watch(self, lsock: socket.socket, handler: Handler) -> None:
        loop = self.loop
        fd = lsock.fileno()

        def resume() -> None:
            if lsock.fileno() == fd:  # not closed (unwatched) meanwhile
                loop.add_reader(fd, on_accept)

        def on_accept() -> None:
            for _ in range(256):
                try:
                    sock, addr = lsock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    # Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the
                    # pending connection stays queued and the socket stays readable, so
                    # retrying at once spins a core and floods the log (a 30,000-agent lab
                    # run: 1.3 cores, 5 million lines in 3 minutes, /healthz unanswered).
                    # Pause this listener as asyncio's own servers do; one line per pause.
                    self.accept_pauses += 1
                    log.warning(
                        "accept failed: %s; not accepting on %s for %.0f s",
                        exc, lsock.getsockname(), ACCEPT_PAUSE_S,
                    )  # fmt: skip
                    loop.remove_reader(fd)
                    loop.call_later(ACCEPT_PAUSE_S, resume)
                    return
                sock.setblocking(False)
                self.spawn(handler(sock, (str(addr[0]), int(addr[1]))))

        loop.add_reader(fd, on_accept)

    def unwatch(self, lsock: socket.socket) -> None:
        if lsock.fileno() >= 0:
            self.loop.remove_reader(lsock.fileno())
