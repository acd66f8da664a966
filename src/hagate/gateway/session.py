"""One agent's session: its control connection, its services and its data connections."""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
from collections import deque
from typing import TYPE_CHECKING

from hagate.net.conn import Conn
from hagate.net.tls import Identity
from hagate.policy import RouteKind
from hagate.policy.model import PolicyData
from hagate.tunnel.wire import Open, ServiceKind, ServiceSpec, encode

if TYPE_CHECKING:
    from hagate.tunnel.connection import TunnelConnection


class StreamError(Exception):
    """A user stream that cannot be opened: HTTP status code and a message for the user."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason  # metrics label
        self.message = message


class Session:
    """The newest authenticated session of a device owns its routes (see Gateway.attach)."""

    __slots__ = (
        "closed",
        "conn",
        "device",
        "identity",
        "local",
        "max_pool",
        "pool",
        "services",
        "sid",
        "tc",
        "waiters",
    )

    def __init__(
        self, identity: Identity, conn: Conn, services: list[ServiceSpec], max_pool: int
    ) -> None:
        self.identity = identity
        self.device = identity.name
        self.conn = conn
        self.services = {s.name: s for s in services}
        self.sid = secrets.token_hex(8)
        self.pool: deque[tuple[Conn, float]] = deque()  # (spare data connection, since)
        self.waiters: dict[str, asyncio.Future[Conn]] = {}
        self.max_pool = max_pool
        self.closed = False
        self.tc: TunnelConnection | None = None  # the control connection's protocol state
        self.local = local_address(conn)  # the address the agent dialled (the VIP), or ""

    def service(self, name: str | None, kind: ServiceKind | None = None) -> ServiceSpec | None:
        """By name; a number matches a target port; None means the default HTTP service."""
        if name is None:
            http = [s for s in self.services.values() if s.kind is ServiceKind.HTTP]
            named = [s for s in http if s.name == "http"]
            candidates = named or http
            return candidates[0] if candidates else None
        svc = self.services.get(name)
        if svc is None and name.isdigit():
            svc = next((s for s in self.services.values() if s.target_port == int(name)), None)
        if svc is not None and kind is not None and svc.kind is not kind:
            return None
        return svc

    async def take_data(self, timeout: float) -> Conn:
        """A data connection: a pre-opened one, or one asked for now with ``open``."""
        while self.pool:
            conn, _ = self.pool.pop()  # the newest: least likely to be expired
            if not conn.closed:
                return conn
        if self.closed:
            raise StreamError(502, "offline", f"device {self.device} went offline")
        token = secrets.token_hex(8)
        fut: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
        self.waiters[token] = fut
        self.conn.write(encode(Open(token)))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise StreamError(504, "timeout", f"device {self.device} did not answer") from None
        finally:
            self.waiters.pop(token, None)

    def add_data(self, token: str, conn: Conn) -> bool:
        """Accept a data connection of this session (requested by token, or for the pool)."""
        if self.closed:
            return False
        if token:
            fut = self.waiters.get(token)
            if fut is None or fut.done():
                return False
            fut.set_result(conn)
            return True
        if len(self.pool) >= self.max_pool:
            return False
        self.pool.append((conn, conn.loop.time()))
        return True

    def expire_pool(self, before: float) -> None:
        """Close spare data connections unused since ``before`` (an idle device keeps none)."""
        while self.pool and self.pool[0][1] < before:
            self.pool.popleft()[0].close()

    def close(self, message: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        if message:
            self.conn.write(message)
        self.conn.close()
        while self.pool:
            self.pool.popleft()[0].close()
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(StreamError(502, "offline", f"device {self.device} went away"))
        self.waiters.clear()


def local_address(conn: Conn) -> str:
    """The IP address ``conn`` was accepted on ("" for a non-IP socket, e.g. in tests)."""
    try:
        if conn.sock.family not in (socket.AF_INET, socket.AF_INET6):
            return ""
        return str(conn.sock.getsockname()[0])
    except (OSError, AttributeError):
        return ""


def address_is_local(address: str) -> bool:
    """Whether this host still has ``address`` (a VIP the node may have lost).

    A bind to an address the host lacks fails with EADDRNOTAVAIL; the kernel keeps
    established connections to a removed address, so this is how a node that lost the VIP
    learns that its agents' sessions are stale. Any other error (or a host that allows
    non-local binds) counts as local: a wrong "gone" would drop live sessions.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        return exc.errno != errno.EADDRNOTAVAIL
    return True


def offline_default_service(data: PolicyData, device: str) -> str | None:
    """The name an offline device's default (web UI) service is given by the policy.

    A connected device says which of its services is the default one; an offline one
    cannot, and the guess "http" turned a request allowed by a rule such as
    ``services = ["web"]`` into a policy 403 instead of "device not connected". The first
    literal service name of a web rule for the device is the best name the gateway has;
    the policy still decides (for the asking client), and the choice depends only on the
    policy and the name asked for, never on whether such a device exists, so a client the
    policy refuses learns nothing about which device names exist.
    """
    for rule in data.rules:
        if not rule.routes & _WEB or not any(p.fullmatch(device) for p in rule.devices):
            continue
        for text in rule.service_text:
            if not any(c in text for c in "*?[") and text:
                return text
    return None


_WEB = frozenset({RouteKind.HTTP, RouteKind.HTTPS})
