"""Admission: accepting connections and bounding TLS handshakes so a flood cannot deny service.

Three budgets, each against a different attack:

* **in progress, globally** (``max_total``): bounds the memory a handshake flood can take.
  When it is full a new handshake is still admitted and the *oldest incomplete* one is
  evicted, so clients that never finish their handshake cannot hold the door shut: a fresh
  legitimate handshake completes in milliseconds, long before 2,048 newer ones push it out;
* **in progress, per address** (``max_per_address``): one address cannot take every slot;
  beyond it a connection is closed at once (it redials);
* **CPU per event-loop turn** (:class:`FairBudget`): at most ``per_turn`` handshake steps
  (~1.5 ms each with OpenSSL 3) run per loop turn, taken round-robin over client addresses,
  so ten flooding addresses get ten shares and a device or user on its own address one share
  of its own, instead of waiting behind the whole flood; pings and streams keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hagate.gateway")

Handler = Callable[[socket.socket, tuple[str, int]], Coroutine[Any, Any, None]]


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
    """One handshake in progress; ``close`` is how eviction ends it."""

    peer: str
    close: Callable[[], None]
    done: bool = False


@dataclass
class Admission:
    max_total: int = 2048
    max_per_address: int = 256
    inflight: OrderedDict[int, Ticket] = field(default_factory=OrderedDict)
    per_address: Counter[str] = field(default_factory=Counter)
    evicted: int = 0
    refused: int = 0

    def admit(self, peer: str, close: Callable[[], None]) -> Ticket | None:
        """A ticket for a new handshake, or None (this address has too many in progress)."""
        if self.per_address[peer] >= self.max_per_address:
            self.refused += 1
            return None
        while len(self.inflight) >= self.max_total:
            _, oldest = self.inflight.popitem(last=False)
            self._forget(oldest)
            self.evicted += 1
            oldest.close()
        ticket = Ticket(peer, close)
        self.inflight[id(ticket)] = ticket
        self.per_address[peer] += 1
        return ticket

    def release(self, ticket: Ticket) -> None:
        if self.inflight.pop(id(ticket), None) is not None:
            self._forget(ticket)

    def _forget(self, ticket: Ticket) -> None:
        ticket.done = True
        self.per_address[ticket.peer] -= 1
        if self.per_address[ticket.peer] <= 0:
            del self.per_address[ticket.peer]


class Acceptor:
    """Accepts on a listening socket and hands each connection to ``handler`` in a task."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.loop = loop
        self.spawn = spawn

    def watch(self, lsock: socket.socket, handler: Handler) -> None:
        loop = self.loop

        def on_accept() -> None:
            for _ in range(256):
                try:
                    sock, addr = lsock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # EMFILE and friends: log, keep serving
                    log.warning("accept failed: %s", exc)
                    return
                sock.setblocking(False)
                self.spawn(handler(sock, (str(addr[0]), int(addr[1]))))

        loop.add_reader(lsock.fileno(), on_accept)

    def unwatch(self, lsock: socket.socket) -> None:
        if lsock.fileno() >= 0:
            self.loop.remove_reader(lsock.fileno())
