"""What the HTTP front needs from the rest of the gateway, as protocols: the node
(gateway/server.py), its access policy (hagate.policy) and a stream's lease (gateway/streams.py).

The front depends on these shapes only, so its tests run it on a fake hub over socketpairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hagate.gateway.protocol import ServiceKind
from hagate.net.conn import Conn
from hagate.net.tls import Identity
from hagate.policy.model import AuthFailure, Decision, Principal, RouteKind


class AccessPolicy(Protocol):
    """What the front asks of :class:`hagate.policy.Policy`."""

    def authenticate(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure: ...

    def authenticate_cached(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure | None: ...

    def is_gateway_credential(self, authorization: str | None) -> bool: ...

    def decide(
        self, principal: Principal, device: str, service: str, route: RouteKind, client_ip: str
    ) -> Decision: ...


class Lease(Protocol):
    """One admitted request (or upgraded stream) in the gateway's stream table."""

    bytes: list[int]  # [0] user -> device, [1] device -> user: the front adds to it

    def on_abort(self, callback: Callable[[], None]) -> None: ...

    def end(self, result: str = "ok", status: int | None = None) -> None: ...


class Hub(Protocol):
    """The gateway as the front sees it (gateway/server.py provides it). ``via`` (admit,
    log_refusal) is given only behind a trusted proxy: the proxy, for the access log."""

    revoked: frozenset[int]  # serials of the CRL now in force (a user certificate's too)

    async def authenticate(
        self,
        policy: AccessPolicy,
        authorization: str | None,
        cert: Identity | None,
        client_ip: str,
    ) -> Principal | AuthFailure: ...

    def service_name(self, device: str, service: str | None) -> str: ...

    async def open_upstream(
        self, device: str, service: str | None, kind: ServiceKind | None
    ) -> Conn: ...

    @property
    def policy(self) -> AccessPolicy: ...  # the current one (reloads replace it)

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        via: str = "",
    ) -> Lease: ...

    def log_refusal(
        self,
        principal: Principal,
        client_ip: str,
        device: str,
        service: str,
        route: RouteKind,
        rule: str,
        status: int,
        reason: str,
        via: str = "",
    ) -> None: ...
