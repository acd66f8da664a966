"""The gateway: tunnel listener for agents and `connect`, HTTP(S) and TCP fronts for users.

Nothing here outlives the process except what gateway.toml and the PKI files hold, so both
nodes behind the VIP are interchangeable and a restart loses nothing: agents reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import gc
import logging
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from hagate.gateway import http
from hagate.gateway.admin import AdminServer
from hagate.gateway.config import GatewayConfig
from hagate.gateway.metrics import Metrics
from hagate.gateway.ports import PortMap, route_key
from hagate.gateway.protocol import (
    MAX_LINE,
    PING,
    VERSION,
    ServiceKind,
    ServiceSpec,
    encode,
    read_message,
)
from hagate.gateway.session import Session, StreamError
from hagate.net.conn import (
    Conn,
    ProtocolError,
    StepBudget,
    listen_socket,
    set_keepalive,
    set_nodelay,
)
from hagate.net.pipe import Pipe
from hagate.net.tls import (
    Identity,
    https_server_context,
    peer_identity,
    tunnel_server_context,
)
from hagate.pki.ca import PKIError, Role, load_revoked

log = logging.getLogger("hagate.gateway")

HEAD_TIMEOUT = 10.0
# TLS handshakes in progress at most (more wait in the kernel's accept queue), and from one
# address (more are closed at once and redial): bounds the memory of a handshake flood and
# keeps one address that never finishes its handshakes from starving everybody else.
MAX_HANDSHAKES = 2048
MAX_HANDSHAKES_PER_ADDRESS = 256
HANDSHAKE_STEPS_PER_TURN = 16  # ~1.5 ms each with OpenSSL 3: pings never wait long
MAX_SPARES = 16  # spare data connections of one session (agents grow to this when busy)
MAX_PING_BACKLOG = 64 * 1024


class Gateway:
    """All listeners of one node. ``await start()``, then ``await stop()``."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.tunnel_ctx = tunnel_server_context(cfg.cert, cfg.key, cfg.ca)
        self.https_ctx = https_server_context(cfg.https_cert, cfg.https_key)
        self.https_ctx.sni_callback = self._sni
        self.metrics = Metrics()
        self.sessions: dict[str, Session] = {}
        self.device_streams: Counter[str] = Counter()
        self.ports = PortMap(cfg.tcp_host, cfg.tcp_ports, dict(cfg.tcp_pinned))
        self.revoked: frozenset[int] = frozenset()
        self._crl_mtime: float | None = None
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self._sni_names: dict[int, str] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._handshakes = 0
        self._budget = StepBudget(HANDSHAKE_STEPS_PER_TURN)
        self._handshakes_from: Counter[str] = Counter()
        self._tls_peer: dict[int, str] = {}  # fd -> address, while its handshake runs
        self._admin: AdminServer | None = None
        self.tick = time.monotonic()  # stamped by the loop; /healthz checks it is fresh
        self._paused: list[tuple[socket.socket, Callable[[], None]]] = []

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._reload_crl(initial=True)
        cfg = self.cfg
        self._listen("tunnel", cfg.tunnel.host, cfg.tunnel.port, self._on_tunnel, tls=True)
        if cfg.https:
            self._listen("https", cfg.https.host, cfg.https.port, self._on_https, tls=True)
        if cfg.http:
            self._listen("http", cfg.http.host, cfg.http.port, self._on_http)
        if cfg.admin:
            self._admin = AdminServer(
                cfg.admin.host, cfg.admin.port, self.health, self.render_metrics
            )
            self.addresses["admin"] = self._admin.address
            self._admin.start()
        self._background.append(asyncio.create_task(self._heartbeat()))
        self._background.append(asyncio.create_task(self._watch_crl()))
        log.info(
            "gateway listening: %s",
            ", ".join(f"{k} {h}:{p}" for k, (h, p) in self.addresses.items()),
        )

    async def stop(self) -> None:
        if self._admin is not None:
            await asyncio.to_thread(self._admin.stop)
            self._admin = None
        for task in self._background:
            task.cancel()
        assert self.loop is not None
        for lsock in self._listeners:
            self.loop.remove_reader(lsock.fileno())
            lsock.close()
        self._listeners.clear()
        for port in list(self.ports.socks):
            self._release_port(port)
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def _listen(
        self,
        name: str,
        host: str,
        port: int,
        handler: Callable[[socket.socket], Coroutine[Any, Any, None]],
        tls: bool = False,
    ) -> None:
        try:
            lsock = listen_socket(host, port)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {host}:{port} ({name}): {exc.strerror}"
            ) from None
        self._listeners.append(lsock)
        self.addresses[name] = lsock.getsockname()[:2]
        self._accept_on(lsock, handler, tls)

    def _accept_on(
        self,
        lsock: socket.socket,
        handler: Callable[[socket.socket], Coroutine[Any, Any, None]],
        tls: bool = False,
    ) -> None:
        assert self.loop is not None
        loop = self.loop

        def on_accept() -> None:
            for _ in range(256):
                if tls and self._handshakes >= MAX_HANDSHAKES:
                    loop.remove_reader(lsock.fileno())
                    self._paused.append((lsock, on_accept))
                    return
                try:
                    sock, addr = lsock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # EMFILE and friends: log, keep serving
                    log.warning("accept failed: %s", exc)
                    return
                sock.setblocking(False)
                if tls:
                    peer = str(addr[0])
                    if self._handshakes_from[peer] >= MAX_HANDSHAKES_PER_ADDRESS:
                        self.metrics.auth_failures["busy"] += 1
                        sock.close()
                        continue
                    self._handshakes += 1  # given back in _tls_accept
                    self._handshakes_from[peer] += 1
                    self._spawn(self._tls_accounted(handler, sock, peer))
                else:
                    self._spawn(handler(sock))

        loop.add_reader(lsock.fileno(), on_accept)

    async def _tls_accounted(
        self,
        handler: Callable[[socket.socket], Coroutine[Any, Any, None]],
        sock: socket.socket,
        peer: str,
    ) -> None:
        self._tls_peer[sock.fileno()] = peer
        await handler(sock)

    def _handshake_done(self, peer: str | None) -> None:
        if peer is not None:
            self._handshakes_from[peer] -= 1
            if self._handshakes_from[peer] <= 0:
                del self._handshakes_from[peer]
        self._handshakes -= 1
        if self._paused and self._handshakes < MAX_HANDSHAKES and self.loop is not None:
            for lsock, on_accept in self._paused:
                if lsock.fileno() >= 0:
                    self.loop.add_reader(lsock.fileno(), on_accept)
            self._paused.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, object]:
        """Called from the admin thread: listeners up and the event loop turning."""
        lag = time.monotonic() - self.tick
        stale = max(2.0, 3 * self.cfg.heartbeat_ms / 1000)
        return {
            "ok": bool(self._listeners) and lag < stale,
            "agents": len(self.sessions),
            "streams": self.metrics.streams_open,
            "loop_lag_ms": round(max(0.0, lag - self.cfg.heartbeat_ms / 1000) * 1000),
        }

    def render_metrics(self) -> str:
        self.metrics.agents_connected = len(self.sessions)
        return self.metrics.render()

    # ---------------------------------------------------------------- revocation

    def _reload_crl(self, initial: bool = False) -> None:
        path = self.cfg.crl
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime
        except OSError as exc:
            if initial:
                raise ValueError(f"CRL {path}: {exc.strerror}") from None
            return
        if mtime == self._crl_mtime:
            return
        try:
            revoked = load_revoked(path, self.cfg.ca)
        except PKIError as exc:
            if initial:
                raise ValueError(str(exc)) from None
            log.error("keeping the old CRL: %s", exc)
            return
        self._crl_mtime = mtime
        self.revoked = revoked
        for session in list(self.sessions.values()):
            if session.identity.serial in revoked:
                log.warning("device %s: certificate revoked, closing its session", session.device)
                self._end_session(session, encode(op="error", error="certificate revoked"))

    async def _watch_crl(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._reload_crl()

    # ---------------------------------------------------------------- heartbeat

    async def _heartbeat(self) -> None:
        """One ping per interval to every agent; an agent that hears none for ~1 s redials."""
        interval = self.cfg.heartbeat_ms / 1000
        assert self.loop is not None
        next_expiry = 0.0
        frozen_at = 0
        while True:
            await asyncio.sleep(interval)
            self.tick = time.monotonic()
            now = self.loop.time()
            if len(self.sessions) > frozen_at * 1.1 + 100:
                # Sessions live long and form no garbage cycles: take them out of the cyclic
                # collector's view, or each full collection walks every session (0.3 s at
                # 8,000 agents, enough for agents to see a silent gateway).
                gc.freeze()
                frozen_at = len(self.sessions)
            if self.cfg.pool_idle >= 0 and now >= next_expiry:
                next_expiry = now + 1.0
                for session in list(self.sessions.values()):
                    if session.pool:
                        session.expire_pool(now - self.cfg.pool_idle)
            sessions = list(self.sessions.values())
            for i, session in enumerate(sessions):
                if i and i % 2000 == 0:
                    await asyncio.sleep(0)  # let other work in between: no long stalls
                if len(session.conn.wbuf) > MAX_PING_BACKLOG:
                    self._end_session(session)
                elif not session.closed:
                    session.conn.write(PING)
                if session.conn.closed:
                    self._end_session(session)

    # ------------------------------------------------------------ tunnel port

    async def _tls_accept(
        self, sock: socket.socket, ctx: ssl.SSLContext
    ) -> tuple[Conn, ssl.SSLSocket] | None:
        peer = self._tls_peer.pop(sock.fileno(), None)
        try:
            return await self._tls_handshake(sock, ctx)
        finally:
            self._handshake_done(peer)

    async def _tls_handshake(
        self, sock: socket.socket, ctx: ssl.SSLContext
    ) -> tuple[Conn, ssl.SSLSocket] | None:
        set_nodelay(sock)
        try:
            ssock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            sock.close()
            return None
        conn = Conn(ssock)
        try:
            await asyncio.wait_for(conn.handshake(self._budget), self.cfg.handshake_timeout)
        except ssl.SSLError as exc:
            reason = (exc.reason or type(exc).__name__).lower()
            if ctx is self.tunnel_ctx:
                self.metrics.auth_failures[reason] += 1
                log.info("TLS client refused: %s", reason)
            conn.close()
            return None
        except (OSError, TimeoutError, EOFError):
            if ctx is self.tunnel_ctx:
                self.metrics.auth_failures["handshake_failed"] += 1
            conn.close()
            return None
        return conn, ssock

    async def _on_tunnel(self, sock: socket.socket) -> None:
        accepted = await self._tls_accept(sock, self.tunnel_ctx)
        if accepted is None:
            return
        conn, ssock = accepted
        ident = peer_identity(ssock)
        try:
            if ident is None:
                raise _Refused("bad_certificate", "certificate has no hagate role")
            if ident.serial in self.revoked:
                raise _Refused("revoked", "certificate revoked")
            msg = await asyncio.wait_for(read_message(conn), self.cfg.handshake_timeout)
            op = msg.get("op")
            if op == "hello" and ident.role is Role.DEVICE:
                await self._control(conn, ident, msg)
            elif op == "data" and ident.role is Role.DEVICE:
                self._data(conn, ident, msg)
            elif op == "connect" and ident.role in (Role.USER, Role.DEVICE):
                await self._connect(conn, ident, msg)
            else:
                raise _Refused("wrong_role", f"a {ident.role.value} certificate cannot {op!r}")
        except _Refused as exc:
            self.metrics.auth_failures[exc.reason] += 1
            log.info("refused %s: %s", ident.name if ident else "?", exc.message)
            conn.write(encode(op="error", error=exc.message))
            conn.close()
        except (ProtocolError, EOFError, TimeoutError, OSError) as exc:
            log.debug("tunnel connection dropped: %s", exc)
            conn.close()

    async def _control(self, conn: Conn, ident: Identity, msg: dict[str, Any]) -> None:
        raw = msg.get("services")
        if not isinstance(raw, list) or len(raw) > 64:
            raise ProtocolError("hello needs a list of at most 64 services")
        services = [ServiceSpec.from_json(s) for s in raw]
        if len({s.name for s in services}) != len(services):
            raise ProtocolError("service names must be unique")
        session = Session(ident, conn, services, max_pool=MAX_SPARES)
        routes, errors = self._attach(session)
        reconnects = msg.get("reconnects")
        if isinstance(reconnects, int) and reconnects > 0:
            self.metrics.reconnects_total += 1
        set_keepalive(conn.sock)
        conn.write(
            encode(
                op="welcome",
                v=VERSION,
                session=session.sid,
                heartbeat_ms=self.cfg.heartbeat_ms,
                dead_after_ms=self.cfg.dead_after_ms,
                pool=self.cfg.pool,
                pool_idle_s=self.cfg.pool_idle,
                routes=routes,
                errors=errors,
            )
        )
        try:
            while not session.closed:
                line = await conn.read_until(b"\n", MAX_LINE)
                if b'"probe"' in line:
                    conn.write(PING)  # an agent that heard nothing for a while asks
                elif b'"bye"' in line:
                    break
        except (EOFError, ProtocolError, OSError):
            pass
        finally:
            self._end_session(session)

    def _attach(self, session: Session) -> tuple[dict[str, str], dict[str, str]]:
        """Make ``session`` the device's only session and bind its routes, at once."""
        device = session.device
        old = self.sessions.get(device)
        self.sessions[device] = session
        self.metrics.sessions_total += 1
        if old is not None:
            self.metrics.superseded_total += 1
            log.info("device %s: new session %s replaces %s", device, session.sid, old.sid)
            old.close(encode(op="superseded"))
        routes: dict[str, str] = {}
        errors: dict[str, str] = {}
        wanted: set[int] = set()
        for svc in session.services.values():
            if svc.kind is ServiceKind.HTTP:
                host = f"{device}.{self.cfg.domain}"
                if svc is not session.service(None):
                    host = f"{svc.name}{http.SERVICE_SEP}{device}.{self.cfg.domain}"
                routes[svc.name] = host
                continue
            key = route_key(device, svc.name)
            try:
                port = self.ports.port_for(key, svc.port)
                lsock = self.ports.bind(key, port)
            except ValueError as exc:
                errors[svc.name] = str(exc)
                log.warning("device %s service %s: %s", device, svc.name, exc)
                continue
            wanted.add(port)
            if lsock is not None:
                self._accept_on(lsock, self._tcp_handler(device, svc.name))
            routes[svc.name] = f"tcp:{port}"
        for port in self.ports.ports_of(device):
            if port not in wanted:
                self._release_port(port)
        log.info("device %s: session %s up, routes %s", device, session.sid, routes)
        return routes, errors

    def _end_session(self, session: Session, message: bytes = b"") -> None:
        session.close(message)
        if self.sessions.get(session.device) is session:
            del self.sessions[session.device]
            for port in self.ports.ports_of(session.device):
                self._release_port(port)
            log.info("device %s: session %s ended", session.device, session.sid)

    def _release_port(self, port: int) -> None:
        lsock = self.ports.release(port)
        if lsock is not None and self.loop is not None:
            self.loop.remove_reader(lsock.fileno())
            lsock.close()

    def _data(self, conn: Conn, ident: Identity, msg: dict[str, Any]) -> None:
        sid, token = msg.get("session"), msg.get("token") or ""
        session = self.sessions.get(ident.name)
        if session is None or session.sid != sid or not isinstance(token, str):
            conn.write(encode(op="error", error="not the current session of this device"))
            conn.close()
            return
        set_nodelay(conn.sock)
        if not session.add_data(token, conn):
            conn.close()

    # ------------------------------------------------------------ user streams

    async def open_stream(
        self, device: str, service: str | None, kind: ServiceKind | None, initial: bytes
    ) -> Conn:
        """A data connection to ``device``'s service, after the agent said it connected."""
        session = self.sessions.get(device)
        if session is None:
            # Unknown and offline look the same without a device database: both are "not here".
            raise StreamError(404, "offline", f"device {device} is not connected")
        svc = session.service(service, kind)
        if svc is None:
            what = f"service {service!r}" if service else "HTTP service"
            raise StreamError(404, "no_service", f"device {device} has no {what}")
        if self.device_streams[device] >= self.cfg.streams_per_device:
            raise StreamError(503, "limit", f"device {device} has too many open streams")
        self.device_streams[device] += 1
        try:
            for _attempt in range(3):
                data = await session.take_data(self.cfg.open_timeout)
                data.write(encode(op="stream", service=svc.name) + initial)
                self.metrics.bytes[0] += len(initial)
                try:
                    status = await asyncio.wait_for(read_message(data), self.cfg.open_timeout)
                except (EOFError, OSError):
                    data.close()  # a pre-opened connection that died: try another
                    continue
                except TimeoutError:
                    data.close()
                    raise StreamError(504, "timeout", f"device {device} did not answer") from None
                if not status.get("ok"):
                    data.close()
                    err = str(status.get("error", "refused"))[:200]
                    raise StreamError(502, "device_error", f"device {device}: {err}")
                return data
            raise StreamError(502, "offline", f"device {device} went away")
        except BaseException:
            self._stream_done(device)
            raise

    def _stream_done(self, device: str) -> None:
        self.device_streams[device] -= 1
        if self.device_streams[device] <= 0:
            del self.device_streams[device]

    def _pipe(self, device: str, user: Conn, data: Conn) -> None:
        """Forward user <-> device; counters and limits are released when both ends close."""
        m = self.metrics
        m.streams_open += 1
        m.streams_total += 1

        def done() -> None:
            m.streams_open -= 1
            self._stream_done(device)

        user_rest, data_rest = bytes(user.rbuf), bytes(data.rbuf)
        Pipe(user.detach(), data.detach(), on_close=done, counter=m.bytes).start(
            user_rest, data_rest
        )

    async def _connect(self, conn: Conn, ident: Identity, msg: dict[str, Any]) -> None:
        device, service = msg.get("device"), msg.get("service")
        if not isinstance(device, str) or not isinstance(service, str):
            raise ProtocolError("connect needs device and service")
        users = self.cfg.users
        if ident.role is Role.USER and users is not None:
            patterns = users.get(ident.name, [])
            if not any(fnmatch.fnmatchcase(device, p) for p in patterns):
                raise _Refused("forbidden", f"user {ident.name} may not reach {device}")
        try:
            data = await self.open_stream(device, service, None, b"")
        except StreamError as exc:
            self.metrics.stream_failures[exc.reason] += 1
            conn.write(encode(ok=False, error=exc.message))
            await asyncio.wait_for(conn.drain(), 2.0)
            conn.close()
            return
        conn.write(encode(ok=True))
        await conn.drain()
        self._pipe(device, conn, data)

    def _tcp_handler(
        self, device: str, service: str
    ) -> Callable[[socket.socket], Coroutine[Any, Any, None]]:
        async def handle(sock: socket.socket) -> None:
            set_nodelay(sock)
            user = Conn(sock)
            try:
                data = await self.open_stream(device, service, ServiceKind.TCP, b"")
            except StreamError as exc:
                self.metrics.stream_failures[exc.reason] += 1
                log.info("tcp %s/%s refused: %s", device, service, exc.message)
                user.close()
                return
            self._pipe(device, user, data)

        return handle

    # --------------------------------------------------------------- HTTP(S)

    def _sni(self, sslsock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name:
            if len(self._sni_names) > 10000:  # entries of failed handshakes
                self._sni_names.clear()
            self._sni_names[id(sslsock)] = name.lower()

    async def _on_https(self, sock: socket.socket) -> None:
        accepted = await self._tls_accept(sock, self.https_ctx)
        if accepted is not None:
            conn, ssock = accepted
            sni = self._sni_names.pop(id(ssock), None)
            await self._serve_http(conn, sni)

    async def _on_http(self, sock: socket.socket) -> None:
        set_nodelay(sock)
        await self._serve_http(Conn(sock), None)

    async def _serve_http(self, conn: Conn, sni: str | None) -> None:
        m = self.metrics
        try:
            head = await asyncio.wait_for(
                conn.read_until(b"\r\n\r\n", self.cfg.header_bytes), HEAD_TIMEOUT
            )
            _method, _target, headers = http.parse_head(head)
        except ProtocolError as exc:
            code = 431 if "more than" in str(exc) else 400
            return await self._reply(conn, code, f"bad request: {exc}")
        except TimeoutError:
            return await self._reply(conn, 408, "request head not received in time")
        except (EOFError, OSError):
            conn.close()
            return
        host = headers.get("host", "")
        route = http.route_for(host, self.cfg.domain)
        if route is None:
            return await self._reply(
                conn, 404, f"unknown host {host!r}: use <device>.{self.cfg.domain}"
            )
        if sni is not None and http.host_name(host) != sni:
            return await self._reply(conn, 421, "TLS server name and Host differ")
        initial = head + bytes(conn.rbuf)
        conn.rbuf.clear()
        try:
            data = await self.open_stream(route.device, route.service, ServiceKind.HTTP, initial)
        except StreamError as exc:
            m.stream_failures[exc.reason] += 1
            return await self._reply(conn, exc.code, exc.message)
        self._pipe(route.device, conn, data)

    async def _reply(self, conn: Conn, code: int, message: str) -> None:
        self.metrics.http_responses[code] += 1
        conn.write(http.response(code, message))
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(conn.drain(), 5.0)
        conn.close()


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


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
    asyncio.run(main())
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
