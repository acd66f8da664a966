"""The gateway node: its listeners, and the state the fronts share (sessions, policy, streams).

Each front is a module of its own: :mod:`tunnel_front` (agents and `connect`),
:mod:`http` (users by Host), :mod:`tcp_front` (inventory ports); :mod:`admission` bounds
handshakes, :mod:`revocation` applies CRL/policy/token changes, :mod:`streams` holds every
user stream's lease. Nothing here outlives the process except what gateway.toml, the policy
and the PKI files hold, so both nodes behind the VIP are interchangeable and a restart loses
nothing: agents reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from hagate.gateway import http
from hagate.gateway.accesslog import AccessEntry, AccessLog
from hagate.gateway.admin.listener import AdminServer
from hagate.gateway.admission import Acceptor, Admission, FairBudget, Handler, client_gone
from hagate.gateway.auth import Authenticator
from hagate.gateway.config import GatewayConfig
from hagate.gateway.http import AccessPolicy, HttpFront, UpstreamPool
from hagate.gateway.logbudget import LogBudget
from hagate.gateway.metrics import Metrics
from hagate.gateway.protocol import ServiceKind, encode, read_message
from hagate.gateway.ratelimit import RateLimiter
from hagate.gateway.revocation import Revocation
from hagate.gateway.session import Session, StreamError, offline_default_service
from hagate.gateway.streams import Lease, Limits, StreamTable, principal_key
from hagate.gateway.tcp_front import TcpFront
from hagate.gateway.tunnel_front import TunnelFront
from hagate.net.backend import KERNEL, Backend
from hagate.net.conn import Conn, set_nodelay
from hagate.net.loop import event_loop_factory
from hagate.net.pipe import Pipe
from hagate.net.tls import (
    Identity,
    https_server_context,
    peer_identity,
    tunnel_server_context,
)
from hagate.policy import AuthFailure, Principal, RouteKind, empty_policy

if TYPE_CHECKING:
    from hagate.cluster.node import ClusterNode
    from hagate.cluster.routes import Record

log = logging.getLogger("hagate.gateway")

HEAD_TIMEOUT = 10.0
HANDSHAKE_STEPS_PER_TURN = 16  # ~1.5 ms each with OpenSSL 3: pings never wait long


class Gateway:
    """All listeners of one node. ``await start()``, then ``await stop()``."""

    def __init__(self, cfg: GatewayConfig, backend: Backend = KERNEL) -> None:
        """``backend`` makes the listening sockets (tests may pass a MemoryBackend)."""
        self.cfg = cfg
        self.backend = backend
        self.session_log = LogBudget(log, "session")  # a failover's storm: one summary
        self.tunnel_ctx = tunnel_server_context(
            cfg.cert,
            cfg.key,
            cfg.ca,
            cluster=cfg.domain if cfg.resumption else None,  # the name both nodes share
            ticket_secret=cfg.ticket_secret,
        )
        self.https_ctx = https_server_context(
            cfg.https_cert, cfg.https_key, cfg.ca if cfg.https_client_certs else None
        )
        self.https_ctx.sni_callback = _remember_sni
        self.metrics = Metrics()
        self.sessions: dict[str, Session] = {}
        self.revoked: frozenset[int] = frozenset()
        self.policy = empty_policy()
        self.access = AccessLog(cfg.access_log, cfg.access_log_format)
        self.streams = StreamTable(
            Limits(cfg.streams_per_device, cfg.streams_per_principal, cfg.anonymous_share),
            on_end=self._lease_ended,
        )
        self.rates = RateLimiter(cfg.requests_per_s, max(10.0, 2 * cfg.requests_per_s))
        self.admission = Admission(cfg.max_handshakes, cfg.handshakes_per_address)
        self.budget = FairBudget(HANDSHAKE_STEPS_PER_TURN)
        self.authenticator = Authenticator()
        self.fronts: list[HttpFront] = []
        self.tunnel = TunnelFront(self)
        self.tcp = TcpFront(self)
        self.revocation = Revocation(self)
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._acceptor: Acceptor | None = None
        self._admin: AdminServer | None = None
        self.tick = time.monotonic()  # stamped by the loop; /healthz checks it is fresh
        self.cluster: ClusterNode | None = None  # [cluster]: one of N nodes (hagate.cluster)
        if cfg.cluster is not None:
            from hagate.cluster.node import ClusterNode

            self.cluster = ClusterNode(self, cfg.cluster)
        if cfg.policy is None:
            log.warning("no [policy] file: every user route is closed (see docs/policy.md)")

    @property
    def acceptor(self) -> Acceptor:
        assert self._acceptor is not None, "start() first"
        return self._acceptor

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._acceptor = Acceptor(self.loop, self._spawn)
        self.revocation.initial()
        cfg = self.cfg
        self._listen("tunnel", cfg.tunnel.host, cfg.tunnel.port, self.tunnel.on_connection)
        if cfg.https:
            self._listen("https", cfg.https.host, cfg.https.port, self._on_https)
            self.https_front = self._front(RouteKind.HTTPS, "https")
        if cfg.http:
            self._listen("http", cfg.http.host, cfg.http.port, self._on_http)
            self.http_front = self._front(RouteKind.HTTP, "http")
        self.tcp.sync()
        if cfg.admin:
            self._admin = AdminServer(
                cfg.admin.host, cfg.admin.port, self.health, self.render_metrics
            )
            self.addresses["admin"] = self._admin.address
            self._admin.start()
        self._background.append(asyncio.create_task(self.tunnel.heartbeat()))
        self._background.append(asyncio.create_task(self.revocation.run()))
        if self.cluster is not None:
            await self.cluster.start()
        log.info(
            "gateway %s listening: %s",
            cfg.node,
            ", ".join(f"{k} {h}:{p}" for k, (h, p) in self.addresses.items()),
        )

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop()
        if self._admin is not None:
            await asyncio.to_thread(self._admin.stop)
            self._admin = None
        for task in self._background:
            task.cancel()
        for lsock in self._listeners:
            self.acceptor.unwatch(lsock)
            lsock.close()
        self._listeners.clear()
        for front in self.fronts:
            front.close()
        self.tcp.close_all()
        for lease in self.streams:
            lease.cut("gateway stopping")
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        self.access.close()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def _listen(self, name: str, host: str, port: int, handler: Handler) -> None:
        try:
            lsock = self.backend.listen(host, port)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {host}:{port} ({name}): {exc.strerror}"
            ) from None
        self._listeners.append(lsock)
        self.addresses[name] = lsock.getsockname()[:2]
        self.acceptor.watch(lsock, handler)

    def _front(self, kind: RouteKind, listener: str) -> HttpFront:
        # The port users put in Host is the listener's own (a node behind a port-mapping
        # proxy would need it configured; hagate listens on the VIP itself).
        front = HttpFront(
            self,
            kind,
            self.addresses[listener][1],
            self.cfg.domain,
            self.cfg.header_bytes,
            HEAD_TIMEOUT,
            pool=UpstreamPool(32, 15.0),
            trusted_proxies=self.cfg.trusted_proxies,
        )
        self.fronts.append(front)
        return front

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ TLS

    async def tls_accept(
        self, sock: socket.socket, client: tuple[str, int], ctx: ssl.SSLContext
    ) -> tuple[Conn, ssl.SSLSocket] | None:
        """Handshake under admission control; None (and counted) if it failed or was evicted."""
        tunnel = ctx is self.tunnel_ctx
        holder: list[Conn] = []

        def evict() -> None:
            if holder:
                holder[0].close()
            else:
                with contextlib.suppress(OSError):
                    sock.close()

        # May park (a storm); a parked one whose client left meanwhile is never started.
        ticket = await self.admission.enter(client[0], evict, lambda: client_gone(sock))
        if ticket is None:
            self.metrics.auth_failures["busy"] += 1
            sock.close()
            return None
        try:
            set_nodelay(sock)
            try:
                ssock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                sock.close()
                return None
            conn = Conn(ssock)
            holder.append(conn)
            try:
                await asyncio.wait_for(
                    conn.handshake(ticket.paced(self.budget, ssock)),
                    self.cfg.handshake_timeout,
                )
            except ssl.SSLError as exc:
                reason = (exc.reason or type(exc).__name__).lower()
                if tunnel:
                    self.metrics.auth_failures[reason] += 1
                    log.info("TLS client %s refused: %s", client[0], reason)
                conn.close()
                return None
            except (OSError, TimeoutError, EOFError):
                if tunnel:
                    key = "evicted" if ticket.done else "handshake_failed"
                    self.metrics.auth_failures[key] += 1
                conn.close()
                return None
            return conn, ssock
        finally:
            self.admission.release(ticket)

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, object]:
        """Called from the admin thread: listeners up and the event loop turning."""
        lag = time.monotonic() - self.tick
        stale = max(2.0, 3 * self.cfg.heartbeat_ms / 1000)
        return {
            "ok": bool(self._listeners) and lag < stale,
            "node": self.cfg.node,
            "agents": len(self.sessions),
            "streams": len(self.streams),
            "handshakes": len(self.admission.inflight),
            "policy": self.policy.source,
            "loop_lag_ms": round(max(0.0, lag - self.cfg.heartbeat_ms / 1000) * 1000),
            **({"cluster": self.cluster.health()} if self.cluster is not None else {}),
        }

    def bytes_forwarded(self) -> tuple[int, int]:
        """(user -> device, device -> user) so far, streams still running included."""
        up, down = self.metrics.bytes
        for lease in self.streams:
            up += lease.bytes[0]
            down += lease.bytes[1]
        return up, down

    def render_metrics(self) -> str:
        self.metrics.agents_connected = len(self.sessions)
        self.metrics.streams_open = len(self.streams)
        self.metrics.handshakes_evicted = self.admission.evicted
        self.metrics.handshakes_parked = self.admission.parked_total
        self.metrics.handshakes_refused = self.admission.refused
        for front in self.fronts:  # answers the HTTP fronts made themselves
            self.metrics.http_responses.update(front.responses)
            front.responses.clear()
        text = self.metrics.render(live_bytes=self.bytes_forwarded())
        return text + (self.cluster.render_metrics() if self.cluster is not None else "")

    # ------------------------------------------------------------ sessions

    def attach(self, session: Session) -> tuple[dict[str, str], dict[str, str]]:
        """Make ``session`` the device's only session; its routes and route errors."""
        device = session.device
        old = self.sessions.get(device)
        self.sessions[device] = session
        self.metrics.sessions_total += 1
        if old is not None:
            self.metrics.superseded_total += 1
            self.session_log.info(
                "device %s: new session %s replaces %s", device, session.sid, old.sid
            )
            old.close(encode(op="superseded"))
            for front in self.fronts:
                front.drop_device(device)  # idle upstreams belong to the old session's agent
            self.streams.cut_where(
                lambda lease: "session superseded" if lease.device == device else None
            )
        routes: dict[str, str] = {}
        errors: dict[str, str] = {}
        default_http = session.service(None)
        for svc in session.services.values():
            if svc.kind is ServiceKind.HTTP:
                host = f"{device}.{self.cfg.domain}"
                if svc is not default_http:
                    host = f"{svc.name}{http.SERVICE_SEP}{device}.{self.cfg.domain}"
                routes[svc.name] = host
                continue
            port = self.tcp.port_of(device, svc.name)
            if port is not None and port in self.tcp.socks:
                routes[svc.name] = f"tcp:{port}"
            else:
                routes[svc.name] = "connect"
                if svc.port is not None and svc.port != port:
                    errors[svc.name] = (
                        f"port {svc.port} is not this service's port in the gateway's "
                        "inventory ([tcp.pinned]); reach it with `hagate connect`"
                    )
        self.session_log.info("device %s: session %s up, routes %s", device, session.sid, routes)
        if self.cluster is not None:
            self.cluster.attached(session)
        return routes, errors

    def end_session(self, session: Session, error: str = "") -> None:
        session.close(encode(op="error", error=error) if error else b"")
        if self.sessions.get(session.device) is session:
            del self.sessions[session.device]
            device = session.device
            for front in self.fronts:
                front.drop_device(device)  # its idle upstreams must not serve anyone again
            self.streams.cut_where(
                lambda lease: f"device {device} went away" if lease.device == device else None
            )
            self.session_log.info("device %s: session %s ended", session.device, session.sid)
            if self.cluster is not None:
                self.cluster.detached(session)

    # ------------------------------------------------------------ user streams

    async def authenticate(
        self,
        policy: AccessPolicy,
        authorization: str | None,
        cert: Identity | None,
        client_ip: str,
    ) -> Principal | AuthFailure:
        return await self.authenticator.authenticate(policy, authorization, cert, client_ip)

    def located(self, device: str) -> Session | Record | None:
        """The device's session here, or its record at another node of the cluster."""
        session = self.sessions.get(device)
        if session is None and self.cluster is not None:
            return self.cluster.lookup(device)
        return session

    def service_name(self, device: str, service: str | None) -> str:
        """The name the policy sees: ``None`` (a device's default web UI) resolved if online."""
        if service is None:
            session = self.located(device)
            if session is None:  # offline: the name the policy gives its web UI, if any
                return offline_default_service(self.policy.data, device) or "http"
            svc = session.service(None)
            return svc.name if svc is not None else "http"
        return service

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        via: str = "",
    ) -> Lease:
        """A lease for one stream (fair limits and rates); StreamError 429/503 when over.
        ``via``: the trusted proxy that named ``client_ip`` (the access log says so)."""
        loop_now = time.monotonic()
        key = principal_key(principal, client_ip)
        try:
            if not self.rates.allow(key, loop_now):
                raise StreamError(429, "rate", f"too many requests from {key}")
            lease = self.streams.admit(
                device, service, route, principal, client_ip, rule, loop_now, key
            )
            if via:
                lease.via = via
        except StreamError as exc:
            self.metrics.stream_failures[exc.reason] += 1
            raise
        self.metrics.streams_total += 1
        return lease

    def authorize_stream(
        self,
        principal: Principal,
        device: str,
        service: str | None,
        route: RouteKind,
        client_ip: str,
        kind: ServiceKind | None,
    ) -> Lease:
        """Policy decision, then a lease; StreamError (403/401/429/503) if either says no."""
        name = service or "http"
        session = self.located(device)
        if session is not None:
            svc = session.service(service, kind)
            if svc is not None:
                name = svc.name
        decision = self.policy.decide(principal, device, name, route, client_ip)
        if not decision.allowed:
            self.metrics.stream_failures["denied"] += 1
            self.log_refusal(
                principal,
                client_ip,
                device,
                name,
                route,
                decision.rule,
                decision.status,
                decision.reason,
            )
            raise StreamError(decision.status, "denied", decision.reason)
        try:
            return self.admit(device, name, route, principal, client_ip, decision.rule)
        except StreamError as exc:
            self.log_refusal(
                principal, client_ip, device, name, route, exc.reason, exc.code, exc.message
            )
            raise

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
    ) -> None:
        self.metrics.access[device, "denied"] += 1
        self.access.write(
            AccessEntry(
                time.time(),
                self.cfg.node,
                principal.label(),
                client_ip,
                device,
                service,
                route.value,
                f"denied: {reason}",
                rule,
                status,
                via=via,
            )
        )

    def _lease_ended(
        self, lease: Lease, result: str, status: int | None, now: float | None
    ) -> None:
        end = time.monotonic() if now is None else now
        self.metrics.bytes[0] += lease.bytes[0]
        self.metrics.bytes[1] += lease.bytes[1]
        self.metrics.access[lease.device, "cut" if result.startswith("cut") else "allowed"] += 1
        self.access.write(
            AccessEntry(
                time.time(),
                self.cfg.node,
                lease.principal.label(),
                lease.client_ip,
                lease.device,
                lease.service,
                lease.route.value,
                result,
                lease.rule,
                status,
                lease.bytes[0],
                lease.bytes[1],
                end - lease.started,
                via=lease.via,
            )
        )

    async def open_upstream(
        self, device: str, service: str | None, kind: ServiceKind | None
    ) -> Conn:
        try:
            return await self._open_upstream(device, service, kind)
        except StreamError as exc:
            self.metrics.stream_failures[exc.reason] += 1
            raise

    async def _open_upstream(
        self, device: str, service: str | None, kind: ServiceKind | None
    ) -> Conn:
        """A data connection to ``device``'s service, after the agent said it connected.

        Within ``open_timeout`` overall: a frozen agent is a 504, never retried as if its
        connection had died. Only a pre-opened spare found dead is replaced (twice at most).
        """
        session = self.sessions.get(device)
        if session is None and self.cluster is not None:
            return await self.cluster.open_remote(device, service, kind)  # another node's
        if session is None:
            # Unknown and offline look the same without a device database: both are "not here".
            raise StreamError(404, "offline", f"device {device} is not connected")
        svc = session.service(service, kind)
        if svc is None:
            what = f"service {service!r}" if service else "HTTP service"
            raise StreamError(404, "no_service", f"device {device} has no {what}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.open_timeout
        for _attempt in range(3):
            data = await session.take_data(max(0.01, deadline - loop.time()))
            data.write(encode(op="stream", service=svc.name))
            try:
                status = await asyncio.wait_for(
                    read_message(data), max(0.01, deadline - loop.time())
                )
            except TimeoutError:  # before OSError: TimeoutError is one
                data.close()
                raise StreamError(504, "timeout", f"device {device} did not answer") from None
            except (EOFError, OSError):
                data.close()  # a pre-opened connection that died: try another
                continue
            if not status.get("ok"):
                data.close()
                err = str(status.get("error", "refused"))[:200]
                raise StreamError(502, "device_error", f"device {device}: {err}")
            return data
        raise StreamError(502, "offline", f"device {device} went away")

    def pipe(self, lease: Lease, user: Conn, data: Conn, initial: bytes = b"") -> None:
        """Forward user <-> device until both ends close; the lease ends with the pipe."""
        user_rest, data_rest = initial + bytes(user.rbuf), bytes(data.rbuf)
        pipe = Pipe(user.detach(), data.detach(), on_close=lease.end, counter=lease.bytes)
        lease.on_abort(pipe.abort)
        pipe.start(user_rest, data_rest)

    # --------------------------------------------------------------- HTTP(S)

    async def _on_https(self, sock: socket.socket, client: tuple[str, int]) -> None:
        accepted = await self.tls_accept(sock, client, self.https_ctx)
        if accepted is not None:
            conn, ssock = accepted
            sni = getattr(ssock, "hagate_sni", None)
            await self.https_front.serve(conn, client, sni, peer_identity(ssock))

    async def _on_http(self, sock: socket.socket, client: tuple[str, int]) -> None:
        set_nodelay(sock)
        await self.http_front.serve(Conn(sock), client, None, None)


def _remember_sni(sslsock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
    """Keep the client's server name on its own socket (no side table to go stale)."""
    if name:
        sslsock.hagate_sni = name.lower()


def run(cfg: GatewayConfig) -> int:
    """Run until SIGINT/SIGTERM."""
    import signal

    async def main() -> None:
        gw = Gateway(cfg)
        await gw.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await gw.stop()

    raise_nofile_limit()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())
    return 0


def raise_nofile_limit(want: int = 1 << 20) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (each agent holds 1 + pool sockets)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (want, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
            return target
        except (ValueError, OSError):
            continue
    return soft
