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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


class Lease:
    """One running user stream; ``end()`` exactly once (``cut()`` ends it too).

    A plain slotted class, not a dataclass: one is made and ended per HTTP request, and a
    dataclass ``__init__`` with two default factories costs more than the whole admission.
    """

    __slots__ = (
        "aborts",
        "bytes",
        "client_ip",
        "cut_reason",
        "device",
        "ended",
        "id",
        "key",
        "principal",
        "route",
        "rule",
        "service",
        "started",
        "table",
        "via",
    )

    def __init__(
        self,
        id: int,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        started: float,
        table: StreamTable,
        key: str,
    ) -> None:
        self.id = id
        self.device = device
        self.service = service
        self.route = route
        self.principal = principal
        self.client_ip = client_ip
        self.rule = rule
        self.started = started
        self.table = table
        self.key = key
        # [0] bytes user -> device, [1] device -> user: pipes add to this list directly.
        self.bytes: list[int] = [0, 0]
        self.aborts: list[Callable[[], None]] = []
        self.ended = False
        self.cut_reason = ""
        self.via = ""  # the trusted proxy that named client_ip (set by Gateway.admit), if any

    def __repr__(self) -> str:
        return f"Lease({self.id}, {self.device}/{self.service} {self.route.value} {self.key})"

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
    """All leases of the node, indexed for limits and for revocation.

    The counts are plain dicts read with ``get`` (an entry at zero is deleted): admission
    runs once per HTTP request, and ``Counter``'s item protocol costs a Python call on a miss.
    """

    def __init__(self, limits: Limits, on_end: EndHook | None = None) -> None:
        self.limits = limits
        self.on_end = on_end
        self._leases: dict[int, Lease] = {}
        self._ids = itertools.count(1)
        self._per_device: dict[str, int] = {}
        self._per_key: dict[tuple[str, str], int] = {}  # (device, principal key)
        self._anonymous: dict[str, int] = {}  # device -> anonymous streams
        self._anonymous_max = max(1, int(limits.per_device * limits.anonymous_share))

    def __len__(self) -> int:
        return len(self._leases)

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._leases.values()))

    def streams_of(self, device: str) -> int:
        return self._per_device.get(device, 0)

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        now: float,
        key: str | None = None,
    ) -> Lease:
        """A lease, or StreamError 503 (device full) / 429 (this principal's share is used).
        ``key``: :func:`principal_key` if the caller has it already."""
        lim = self.limits
        per_device = self._per_device
        on_device = per_device.get(device, 0)
        if on_device >= lim.per_device:
            raise StreamError(503, "limit", f"device {device} has too many open streams")
        if key is None:
            key = principal_key(principal, client_ip)
        per_key = self._per_key
        pair = (device, key)
        held = per_key.get(pair, 0)
        if held >= lim.per_principal:
            raise StreamError(
                429, "principal_limit", f"too many open streams to {device} from {key}"
            )
        anonymous = principal.kind is PrincipalKind.ANONYMOUS
        if anonymous:
            if self._anonymous.get(device, 0) >= self._anonymous_max:
                raise StreamError(
                    429, "anonymous_limit", f"too many anonymous streams to {device}; authenticate"
                )
            self._anonymous[device] = self._anonymous.get(device, 0) + 1
        lease = Lease(
            next(self._ids), device, service, route, principal, client_ip, rule, now, self, key
        )
        self._leases[lease.id] = lease
        per_device[device] = on_device + 1
        per_key[pair] = held + 1
        return lease

    def release(self, lease: Lease, result: str, status: int | None, now: float | None) -> None:
        if self._leases.pop(lease.id, None) is None:
            return
        device = lease.device
        _decrement(self._per_device, device)
        _decrement(self._per_key, (device, lease.key))
        if lease.principal.kind is PrincipalKind.ANONYMOUS:
            _decrement(self._anonymous, device)
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


def _decrement(counts: dict[_K, int], key: _K) -> None:
    n = counts.get(key, 0) - 1
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)
