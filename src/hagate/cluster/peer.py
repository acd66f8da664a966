"""The node-to-node peer channel: a user at node A for a device attached to node B is spliced
A -> B over mutual TLS (both ends present a certificate of role ``node`` from the cluster CA).

One peer connection carries one user stream, exactly like a device's data connection: A sends
one line ``{"op": "open", "device", "service", "kind", "entry", "user"}``, B opens the stream
to its local agent and answers ``{"ok": true}`` (then raw bytes both ways) or
``{"ok": false, "code", "reason", "error"}``. The access policy has been applied at A, once:
B checks only that the caller is a node of the cluster (and not revoked). B never forwards a
peer request further (a stale route ends at the first node that does not hold the device, as
"not here", instead of bouncing between nodes).

The entry node keeps a couple of connections to each peer it uses open and idle, handshake
done (:class:`PeerClient`), so a user's stream costs one round trip for the open line, not
TCP + TLS first; TLS 1.3 session tickets are on for this channel (unlike the agents' port),
so refilling the spares resumes instead of doing full handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import ssl
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hagate.gateway.protocol import ServiceKind, WireError, encode, read_message
from hagate.gateway.session import StreamError
from hagate.net.backend import Backend
from hagate.net.conn import Conn, ProtocolError, parse_hostport, set_nodelay
from hagate.net.pipe import Pipe
from hagate.net.tls import peer_identity, tunnel_server_context
from hagate.pki.ca import Role

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.cluster")

# Set while a node serves a peer's request: the gateway must then not forward again.
FROM_PEER: contextvars.ContextVar[bool] = contextvars.ContextVar("hagate_from_peer", default=False)

OPEN_LINE_LIMIT = 4096
SPARE_AGE = 20.0  # s a pre-opened peer connection may wait at the entry node
SPARE_WAIT = 30.0  # s the serving node waits for a connection's open line


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = tunnel_server_context(cert, key, ca)
    ctx.options &= ~ssl.OP_NO_TICKET  # peers resume (see module doc)
    return ctx


class PeerServer:
    """Serves peers' ``open`` requests from this node's local sessions."""

    def __init__(self, gw: Gateway, ctx: ssl.SSLContext) -> None:
        self.gw = gw
        self.ctx = ctx
        self.pipes: dict[str, set[Pipe]] = {}
        self.counts: Counter[str] = Counter()

    def cut_device(self, device: str) -> None:
        """Close every stream served to peers for ``device`` (its session ended or moved)."""
        for pipe in list(self.pipes.pop(device, ())):
            pipe.abort()

    def close_all(self) -> None:
        for device in list(self.pipes):
            self.cut_device(device)

    async def on_connection(self, sock: socket.socket, client: tuple[str, int]) -> None:
        accepted = await self.gw.tls_accept(sock, client, self.ctx)
        if accepted is None:
            self.counts["tls_failed"] += 1
            return
        conn, ssock = accepted
        ident = peer_identity(ssock)
        if ident is None or ident.role is not Role.NODE or ident.serial in self.gw.revoked:
            self.counts["not_a_node"] += 1
            log.warning("peer %s refused: not a node certificate of this cluster", client[0])
            conn.close()
            return
        try:
            msg = await asyncio.wait_for(read_message(conn, OPEN_LINE_LIMIT), SPARE_WAIT)
        except (EOFError, OSError, TimeoutError, ProtocolError, WireError):
            self.counts["bad_request"] += 1
            conn.close()
            return
        device, service, kind = msg.get("device"), msg.get("service"), msg.get("kind")
        if (
            msg.get("op") != "open"
            or not isinstance(device, str)
            or not (service is None or isinstance(service, str))
            or kind not in (None, "http", "tcp")
        ):
            self.counts["bad_request"] += 1
            conn.close()
            return
        token = FROM_PEER.set(True)
        try:
            data = await self.gw.open_upstream(device, service, ServiceKind(kind) if kind else None)
        except StreamError as exc:
            self.counts[f"refused_{exc.reason}"] += 1
            conn.write(encode(ok=False, code=exc.code, reason=exc.reason, error=exc.message))
            await _drain_close(conn)
            return
        finally:
            FROM_PEER.reset(token)
        conn.write(encode(ok=True))
        try:
            await asyncio.wait_for(conn.drain(), 5.0)
        except (OSError, TimeoutError):
            conn.close()
            data.close()
            return
        self.counts["served"] += 1
        log.debug("peer %s (%s) -> %s/%s", ident.name, msg.get("user", "?"), device, service)
        self._splice(device, conn, data)

    def _splice(self, device: str, conn: Conn, data: Conn) -> None:
        peer_rest, data_rest = bytes(conn.rbuf), bytes(data.rbuf)
        pipes = self.pipes.setdefault(device, set())
        holder: list[Pipe] = []

        def done() -> None:
            if holder:
                pipes.discard(holder[0])

        pipe = Pipe(conn.detach(), data.detach(), on_close=done)
        holder.append(pipe)
        pipes.add(pipe)
        pipe.start(peer_rest, data_rest)


class PeerClient:
    """Opens streams at other nodes for users of this one.

    Keeps ``spares`` TLS connections to each peer it has used, handshake done, so a user's
    request costs one round trip (the open line) instead of TCP + TLS first; a spare is used
    within ``SPARE_AGE`` s (the peer waits ``SPARE_WAIT`` s for its open line) and one that
    turns out dead is replaced by a fresh connection once.
    """

    def __init__(
        self,
        node: str,
        ctx: ssl.SSLContext,
        backend: Backend,
        on_error: Callable[[str], None],
        spares: int = 2,
        revoked: Callable[[], frozenset[int]] = frozenset,
    ) -> None:
        self.node = node
        self.revoked = revoked  # the CRL's serials now: a revoked node is not dialled
        self.ctx = ctx
        self.backend = backend
        self.on_error = on_error
        self.spares = spares
        self.tls_sessions: dict[str, ssl.SSLSession] = {}
        self.pool: dict[str, deque[tuple[Conn, float]]] = {}
        self.counts: Counter[str] = Counter()
        self._filling: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for spares in self.pool.values():
            while spares:
                spares.popleft()[0].close()

    def forget(self, peer: str) -> None:
        """Drop the spares of a node that left the cluster."""
        for conn, _ in self.pool.pop(peer, deque()):
            conn.close()

    async def _dial(self, peer: str, address: str, timeout: float) -> Conn:
        host, port = parse_hostport(address)
        sock = await self.backend.connect(host, port, timeout)
        set_nodelay(sock)
        ssock = self.ctx.wrap_socket(
            sock,
            server_hostname=peer,
            do_handshake_on_connect=False,
            session=self.tls_sessions.get(peer),
        )
        conn = Conn(ssock)
        try:
            await asyncio.wait_for(conn.handshake(), timeout)
            ident = peer_identity(ssock)
            if ident is None or ident.role is not Role.NODE or ident.name != peer:
                raise StreamError(502, "peer_refused", f"node {peer}: not its node certificate")
            if ident.serial in self.revoked():
                raise StreamError(502, "peer_refused", f"node {peer}: certificate revoked")
        except BaseException:
            conn.close()
            raise
        self.counts["dialed"] += 1
        return conn

    def _take(self, peer: str, now: float) -> Conn | None:
        spares = self.pool.get(peer)
        while spares:
            conn, since = spares.pop()
            if not conn.closed and now - since < SPARE_AGE:
                return conn
            conn.close()
        return None

    def _refill(self, peer: str, address: str) -> None:
        if self.spares <= 0 or peer in self._filling:
            return
        self._filling.add(peer)
        task = asyncio.create_task(self._fill(peer, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, peer: str, address: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            spares = self.pool.setdefault(peer, deque())
            while len(spares) < self.spares:
                try:
                    conn = await self._dial(peer, address, 5.0)
                except (OSError, TimeoutError, ssl.SSLError, StreamError, ValueError):
                    return
                spares.append((conn, loop.time()))
        finally:
            self._filling.discard(peer)

    async def open(
        self,
        peer: str,
        address: str,
        device: str,
        service: str | None,
        kind: ServiceKind | None,
        timeout: float,
        user: str = "",
    ) -> Conn:
        """A connection that carries ``device``'s ``service`` at node ``peer``, or StreamError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        line = encode(
            op="open",
            device=device,
            service=service,
            kind=kind.value if kind else None,
            entry=self.node,
            user=user,
        )
        spare = self._take(peer, loop.time())
        self._refill(peer, address)
        for attempt in range(2):
            conn = spare if attempt == 0 else None
            try:
                if conn is None:
                    conn = await self._dial(peer, address, max(0.01, deadline - loop.time()))
                else:
                    self.counts["spare_used"] += 1
                conn.write(line)
                reply = await asyncio.wait_for(
                    read_message(conn, OPEN_LINE_LIMIT), max(0.01, deadline - loop.time())
                )
                ssock = conn.sock
                if isinstance(ssock, ssl.SSLSocket) and ssock.session is not None:
                    self.tls_sessions[peer] = ssock.session
                break
            except StreamError:
                if conn is not None:
                    conn.close()
                raise
            except (
                OSError,
                EOFError,
                TimeoutError,
                ssl.SSLError,
                ProtocolError,
                WireError,
                ValueError,
            ) as exc:
                if conn is not None:
                    conn.close()
                if attempt == 0 and spare is not None and not isinstance(exc, TimeoutError):
                    self.counts["spare_dead"] += 1
                    continue  # a spare the peer had closed: once more, freshly dialled
                self.counts["unreachable"] += 1
                self.forget(peer)
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.on_error(f"node {peer} at {address}: {why}")
                code = 504 if isinstance(exc, TimeoutError) else 502
                raise StreamError(
                    code, "peer_unreachable", f"device {device}: node {peer} unreachable"
                ) from None
        assert conn is not None
        if not reply.get("ok"):
            conn.close()
            self.counts["refused"] += 1
            status = reply.get("code")
            raise StreamError(
                status if isinstance(status, int) and 400 <= status < 600 else 502,
                str(reply.get("reason", "peer_refused"))[:40],
                str(reply.get("error", "refused"))[:200],
            )
        self.counts["opened"] += 1
        return conn


async def _drain_close(conn: Conn) -> None:
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(conn.drain(), 2.0)
    conn.close()
