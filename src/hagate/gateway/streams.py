"""User streams: who holds which of a device's slots, fair limits, and the handle that cuts one.

Every user stream (an HTTP request in flight or an upgraded WebSocket, a raw TCP connection, a
`hagate connect` stream) holds a :class:`Lease` from :class:`StreamTable` for as long as it
runs. The table is what makes limits fair and revocation total:

* a device has ``per_device`` slots; one principal (an authenticated identity, or the client
  address when anonymous) holds at most ``per_principal`` of them, and anonymous clients
  together at most ``anonymous_share`` of them, so an anonymous trickle cannot lock an
  authenticated user out of a device;
* revocation and policy reloads walk the leases and cut the ones that are no longer allowed:
  each front registers, with :meth:`Lease.on_abort`, how to close what it forwards.

Pure bookkeeping: no sockets; ``now`` comes from the caller.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from hagate.gateway.session import StreamError
from hagate.policy import Principal, PrincipalKind, RouteKind

_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class Limits:
    per_device: int = 256
    per_principal: int = 32  # of one device's slots, for one principal
    anonymous_share: float = 0.5  # of one device's slots, for all anonymous clients together


def principal_key(principal: Principal, client_ip: str) -> str:
    """Whose budget a stream counts against: the identity, or the address when anonymous."""
    if principal.kind is PrincipalKind.ANONYMOUS:
        return f"ip:{client_ip}"
    return principal.label()


@dataclass(eq=False, slots=True)
class Lease:
    """One running user stream; ``end()`` exactly once (``cut()`` ends it too)."""

    id: int
    device: str
    service: str
    route: RouteKind
    principal: Principal
    client_ip: str
    rule: str
    started: float
    table: StreamTable
    key: str
    # [0] bytes user -> device, [1] device -> user: pipes add to this list directly.
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    aborts: list[Callable[[], None]] = field(default_factory=list)
    ended: bool = False
    cut_reason: str = ""

    def on_abort(self, callback: Callable[[], None]) -> None:
        """How to close this stream's connections when it is cut."""
        self.aborts.append(callback)

    def end(self, result: str = "ok", status: int | None = None, now: float | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.table.release(self, self.cut_reason or result, status, now)

    def cut(self, reason: str) -> None:
        """Close the stream now (revoked, no longer allowed, gateway stopping)."""
        if self.ended or self.cut_reason:
            return
        self.cut_reason = f"cut: {reason}"
        for callback in self.aborts:
            callback()
        self.end()


EndHook = Callable[[Lease, str, "int | None", "float | None"], None]


class StreamTable:
    """All leases of the node, indexed for limits and for revocation."""

    def __init__(self, limits: Limits, on_end: EndHook | None = None) -> None:
        self.limits = limits
        self.on_end = on_end
        self._leases: dict[int, Lease] = {}
        self._ids = itertools.count(1)
        self._per_device: Counter[str] = Counter()
        self._per_key: Counter[tuple[str, str]] = Counter()  # (device, principal key)
        self._anonymous: Counter[str] = Counter()  # device -> anonymous streams

    def __len__(self) -> int:
        return len(self._leases)

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._leases.values()))

    def streams_of(self, device: str) -> int:
        return self._per_device[device]

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        now: float,
    ) -> Lease:
        """A lease, or StreamError 503 (device full) / 429 (this principal's share is used)."""
        lim = self.limits
        if self._per_device[device] >= lim.per_device:
            raise StreamError(503, "limit", f"device {device} has too many open streams")
        key = principal_key(principal, client_ip)
        if self._per_key[device, key] >= lim.per_principal:
            raise StreamError(
                429, "principal_limit", f"too many open streams to {device} from {key}"
            )
        anonymous = principal.kind is PrincipalKind.ANONYMOUS
        if anonymous and self._anonymous[device] >= max(
            1, int(lim.per_device * lim.anonymous_share)
        ):
            raise StreamError(
                429, "anonymous_limit", f"too many anonymous streams to {device}; authenticate"
            )
        lease = Lease(
            next(self._ids), device, service, route, principal, client_ip, rule, now, self, key
        )
        self._leases[lease.id] = lease
        self._per_device[device] += 1
        self._per_key[device, key] += 1
        if anonymous:
            self._anonymous[device] += 1
        return lease

    def release(self, lease: Lease, result: str, status: int | None, now: float | None) -> None:
        if self._leases.pop(lease.id, None) is None:
            return
        _decrement(self._per_device, lease.device)
        _decrement(self._per_key, (lease.device, lease.key))
        if lease.principal.kind is PrincipalKind.ANONYMOUS:
            _decrement(self._anonymous, lease.device)
        if self.on_end is not None:
            self.on_end(lease, result, status, now)

    def cut_where(self, predicate: Callable[[Lease], str | None]) -> int:
        """Cut every lease for which ``predicate`` gives a reason; how many were cut."""
        n = 0
        for lease in self:
            reason = predicate(lease)
            if reason:
                lease.cut(reason)
                n += 1
        return n


def _decrement(counter: Counter[_K], key: _K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
