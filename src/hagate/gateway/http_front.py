"""The HTTP(S) front: every request of a user connection parsed, routed by its own Host,
authorised, and forwarded over an upstream connection pooled per device.

A keep-alive connection is not bound to a device: nginx with upstream keep-alive (or any
client) may send requests for dev1 and dev2 on one connection, and each is answered by the
device its Host names. Upstream connections (data connections to a device's HTTP service) are
kept idle in a pool per (device, service) and reused; a request that fails on a reused one
before any response byte is sent once more on a fresh one, if it is idempotent and has no body
(nginx's ``proxy_next_upstream``). ``Upgrade`` (WebSocket) requests become a raw
:class:`~hagate.net.pipe.Pipe` once the device answers 101.

Parser: httptools (llhttp, Node's parser) rather than h11. Measured on this machine (2 vCPU
EPYC, Python 3.11, one keep-alive GET of 5 headers and its 13-byte response): a full proxy
cycle (parse the request, serialise it, parse the response, serialise it) costs 84 µs with
h11 0.16 and 2.8 µs with httptools 0.9; the bench target (1.5x ``ssh -R``, ~8,500 req/s on
one connection) leaves ~120 µs per request for the gateway *and* the agent, so h11 alone would
miss it. llhttp is strict by default: it refuses CL+TE, two Content-Lengths, obs-fold, bare
LF, bad chunk sizes and lone CRs, which is what closes the smuggling shapes; what it lets
through (two Hosts, Host with userinfo or another port, odd versions, CONNECT, transfer codings
other than chunked) is checked here. Bodies are re-framed, never passed through raw: what the
device sees is exactly what llhttp parsed.

Flow control: the front reads from one side only while the other can take what it writes
(``Conn.drain`` past ``HIGH_WATER`` bytes), so a slow device holds back the upload and a slow
browser holds back the download; no body is ever held whole. Pipelined requests wait, parsed,
until the response before them is complete.

Timers: one lazy deadline per connection (re-armed only when it fires), not one timer per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

import httptools

from hagate.gateway import http
from hagate.gateway.protocol import ServiceKind
from hagate.gateway.session import StreamError
from hagate.net.conn import Conn
from hagate.net.pipe import Pipe
from hagate.net.tls import Identity
from hagate.policy.model import ANONYMOUS, AuthFailure, Decision, Principal, RouteKind

log = logging.getLogger("hagate.gateway.http")

READ_SIZE = 65536
HIGH_WATER = 256 * 1024  # bytes queued toward one side before the other side is not read
LINGER = 2.0  # after a last answer, how long unread input is drained before the close
LINGER_BYTES = 1 << 20
DEFAULT_SERVICE = "http"  # the name the policy sees for ``<device>.<domain>``
_ROUTE_CACHE_MAX = 4096


# ------------------------------------------------------------------------------ interfaces


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
    """The gateway as the front sees it (gateway/server.py provides it)."""

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
    ) -> None: ...


# ---------------------------------------------------------------------------- upstream pool


def _alive(conn: Conn) -> bool:
    """An idle upstream the device has not closed: no syscall, the event loop has watched it
    since it went idle (:meth:`Conn.idle`)."""
    if conn.closed or conn.stale or conn.rbuf or conn.wbuf:
        return False
    sock = conn.sock
    return not (isinstance(sock, ssl.SSLSocket) and sock.pending())  # stray decrypted bytes


class UpstreamPool:
    """Idle upstream connections per (device, service): newest reused first, at most
    ``per_key`` kept, each closed after ``idle`` seconds unused."""

    def __init__(self, per_key: int = 32, idle: float = 15.0) -> None:
        self.per_key = per_key
        self.idle = idle
        self._idle: dict[tuple[str, str | None], deque[tuple[Conn, float]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.reused = 0
        self.opened = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._idle.values())

    def take(self, key: tuple[str, str | None]) -> Conn | None:
        queue = self._idle.get(key)
        while queue:
            conn, _ = queue.pop()
            if _alive(conn):
                if not queue:
                    del self._idle[key]
                self.reused += 1
                return conn
            conn.close()
        self._idle.pop(key, None)
        return None

    def put(self, key: tuple[str, str | None], conn: Conn) -> None:
        if self.per_key <= 0 or self.idle <= 0 or conn.closed:
            conn.close()
            return
        queue = self._idle.setdefault(key, deque())
        if len(queue) >= self.per_key:
            queue.popleft()[0].close()
        conn.idle()
        now = conn.loop.time()
        queue.append((conn, now))
        if self._timer is None:
            self._timer = conn.loop.call_at(now + self.idle, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        before = loop.time() - self.idle
        for key in list(self._idle):
            queue = self._idle[key]
            while queue and (queue[0][1] <= before or queue[0][0].closed):
                queue.popleft()[0].close()
            if not queue:
                del self._idle[key]
        if self._idle:
            oldest = min(q[0][1] for q in self._idle.values())
            self._timer = loop.call_at(oldest + self.idle, self._expire)

    def drop_device(self, device: str) -> None:
        """The device's session ended: its idle upstreams are dead."""
        for key in [k for k in self._idle if k[0] == device]:
            for conn, _ in self._idle.pop(key):
                conn.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue in self._idle.values():
            for conn, _ in queue:
                conn.close()
        self._idle.clear()


# ---------------------------------------------------------------------------- the front


class HttpFront:
    """One per HTTP(S) listener. ``await serve(conn, client, sni, cert)`` per connection."""

    def __init__(
        self,
        hub: Hub,
        route_kind: RouteKind,
        listen_port: int,
        domain: str,
        header_bytes: int = 16384,
        head_timeout: float = 10.0,
        *,
        idle_timeout: float = 60.0,
        io_timeout: float = 60.0,
        pool: UpstreamPool | None = None,
    ) -> None:
        self.hub = hub
        self.route_kind = route_kind
        self.listen_port = listen_port
        self.domain = domain.lower().rstrip(".")
        self.header_bytes = header_bytes
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.io_timeout = io_timeout
        self.pool = pool if pool is not None else UpstreamPool()
        self.proto = "https" if route_kind is RouteKind.HTTPS else "http"
        self.responses: Counter[int] = Counter()  # answers the front made itself, by status
        self._routes: dict[bytes, tuple[str, http.Route | None] | http.HostError] = {}

    async def serve(
        self,
        conn: Conn,
        client: tuple[str, int],
        sni: str | None = None,
        cert: Identity | None = None,
    ) -> None:
        """Serve every request of ``conn`` until either side closes (or it is upgraded)."""
        user = _UserConn(self, conn, client, sni.lower().rstrip(".") if sni else None, cert)
        try:
            await user.run()
            await user.linger()
        except asyncio.CancelledError:
            if user.timed_out is None:
                raise
        except (OSError, EOFError, _Deadline):
            pass
        except Exception as exc:  # a bug must not take the gateway down: log, close
            log.warning("http connection from %s failed: %r", user.client_ip, exc)
        finally:
            user.finish()

    def close(self) -> None:
        """Close the idle upstreams (gateway stopping)."""
        self.pool.close()

    def drop_device(self, device: str) -> None:
        """The device's session ended (gone, superseded, revoked): its idle upstreams must
        not carry another request."""
        self.pool.drop_device(device)

    def route(self, host: bytes) -> tuple[str, http.Route | None]:
        """(host name, route or None for another domain); HostError for a bad Host."""
        hit = self._routes.get(host)
        if hit is None:
            try:
                name = http.check_host(host, self.listen_port)
                hit = (name, http.route_for(name, self.domain))
            except http.HostError as exc:
                hit = exc
            if len(self._routes) >= _ROUTE_CACHE_MAX:
                self._routes.clear()
            self._routes[host] = hit
        if isinstance(hit, http.HostError):
            raise hit
        return hit


# ------------------------------------------------------------------------ per request


class _Request:
    """One request head as parsed, plus what the front derived from it."""

    __slots__ = (
        "authorization",
        "body",
        "chunked",
        "close",
        "expect",
        "headers",
        "host",
        "hosts",
        "method",
        "target",
        "tokens",
        "too_big",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes, bytes]],
        keep_alive: bool,
        upgrade: bool,
        too_big: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # (lower-case name, name, value)
        self.too_big = too_big
        self.host = b""
        self.hosts = 0
        self.authorization: bytes | None = None
        self.chunked = False
        self.body = False
        self.expect = False
        self.upgrade: bytes | None = None
        conn_values: list[bytes] = []
        for lname, _name, value in headers:
            if lname == b"host":
                self.hosts += 1
                self.host = value
            elif lname == b"content-length":
                self.body = self.body or value.strip() != b"0"
            elif lname == b"transfer-encoding":
                self.chunked = True
                self.body = True
            elif lname == b"connection":
                conn_values.append(value)
            elif lname == b"authorization":
                self.authorization = value
            elif lname == b"upgrade" and upgrade:
                self.upgrade = value
            elif lname == b"expect":
                self.expect = True
        self.tokens = http.connection_tokens(conn_values) - http.PROTECTED
        self.close = not keep_alive


class _End:
    """End of a request body (llhttp's on_message_complete)."""


END = _End()
Event = _Request | bytes | _End


class _Deadline(Exception):
    """Raised in place of the CancelledError of a deadline (so callers can tell them apart)."""


# Deadline kinds: what to do when one passes.
IDLE, HEAD, BODY, DEVICE, SEND = "idle", "head", "body", "device", "send"


class _UserConn:
    """One user connection: its request parser, its deadline, and the exchange in progress."""

    __slots__ = (
        "_head_fed",
        "_head_size",
        "_headers",
        "_in_head",
        "_timer",
        "_url",
        "cert",
        "client_ip",
        "conn",
        "deadline",
        "deadline_kind",
        "error",
        "events",
        "forwarded",
        "front",
        "loop",
        "parser",
        "peer_done",
        "pipe",
        "sni",
        "task",
        "timed_out",
        "upgrade_tail",
        "upstream",
    )

    def __init__(
        self,
        front: HttpFront,
        conn: Conn,
        client: tuple[str, int],
        sni: str | None,
        cert: Identity | None,
    ) -> None:
        self.front = front
        self.conn = conn
        self.client_ip = str(client[0])
        self.sni = sni
        self.cert = cert
        self.loop = conn.loop
        self.task = asyncio.current_task()
        self.events: deque[Event] = deque()
        self.error: str | None = None  # llhttp refused what followed the queued events
        self.upgrade_tail: bytes | None = None
        self.forwarded = http.forwarded_fields(self.client_ip, front.proto)
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes, bytes]] = []
        self._in_head = False
        self._head_fed = 0
        self._head_size = 0
        self.upstream: Conn | None = None  # of the exchange in progress (for abort)
        self.pipe: Pipe | None = None
        self.deadline = 0.0
        self.deadline_kind: str | None = None
        self.timed_out: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.peer_done = False  # the user sent FIN (or went quiet): no lingering close

    # ---------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._head_fed = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:  # else a trailer field of a chunked body: dropped
            self._headers.append((name.lower(), name, value))
            self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        parser = self.parser
        self._in_head = False
        self._head_fed = 0
        self.events.append(
            _Request(
                parser.get_method(),
                self._url,
                parser.get_http_version(),
                self._headers,
                parser.should_keep_alive(),
                parser.should_upgrade(),
                self._head_size > self.front.header_bytes,
            )
        )

    def on_body(self, body: bytes) -> None:
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.events.append(END)

    def feed(self, data: bytes) -> None:
        """Parse bytes from the user into events; refusals become ``self.error``."""
        if self.error is not None or self.upgrade_tail is not None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_tail = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self.error = str(exc) or type(exc).__name__
        if self._in_head:
            self._head_fed += len(data)
            if self._head_fed > self.front.header_bytes + READ_SIZE:
                self.error = "431"

    # ---------------------------------------------------------------- deadlines

    def arm(self, delay: float, kind: str) -> None:
        self.deadline = self.loop.time() + delay
        self.deadline_kind = kind
        timer = self._timer
        if timer is None or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self.deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.deadline_kind is None:
            return
        if self.loop.time() < self.deadline:
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        self.timed_out = self.deadline_kind
        self.deadline_kind = None
        if self.task is not None:
            self.task.cancel()

    def _deadline_passed(self) -> _Deadline:
        """Turn the deadline's cancellation back into an ordinary exception."""
        if self.task is not None:
            self.task.uncancel()
        return _Deadline(self.timed_out or "?")

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        first = True
        while True:
            req = await self.next_request(first)
            if req is None:
                return
            first = False
            if not await self.exchange(req):
                return

    async def recv(self, delay: float, kind: str) -> bytes:
        """Bytes from the user (b"" at EOF) within ``delay`` seconds, else _Deadline."""
        self.arm(delay, kind)
        try:
            return await self.conn.recv_some(READ_SIZE)
        except asyncio.CancelledError:
            if self.timed_out is None:
                raise
            raise self._deadline_passed() from None
        finally:
            self.deadline_kind = None

    async def next_request(self, first: bool) -> _Request | None:
        """The next request head, or None when the connection is over (answered if need be)."""
        front = self.front
        while True:
            while self.events:
                event = self.events.popleft()
                if isinstance(event, _Request):
                    return event
            if self.error is not None:
                if self.error == "431":
                    await self.reply(431, "request head too large", close=True)
                else:
                    await self.reply(400, f"bad request: {self.error}", close=True)
                return None
            if self.upgrade_tail is not None:
                return None  # a refused upgrade: its connection is not HTTP any more
            partial = self._in_head
            try:
                if partial or first:
                    data = await self.recv(front.head_timeout, HEAD)
                else:
                    data = await self.recv(front.idle_timeout, IDLE)
            except _Deadline as exc:
                if str(exc) == HEAD:
                    await self.reply(408, "request head not received in time", close=True)
                else:
                    self.peer_done = True
                return None
            if not data:
                self.peer_done = True
                return None
            self.feed(data)

    # -------------------------------------------------------------- one exchange

    async def exchange(self, req: _Request) -> bool:
        """Answer one request; whether the connection may carry another."""
        front = self.front
        refusal = self.check(req)
        if refusal is not None:
            status, message = refusal
            await self.reply(status, message, close=True)
            return False
        try:
            name, route = front.route(req.host)
        except http.HostError as exc:
            return await self.refuse(req, exc.status, exc.message)
        if route is None:
            return await self.refuse(
                req, 404, f"unknown host {name!r}: use <device>.{front.domain}"
            )
        if self.sni is not None and name != self.sni:
            return await self.refuse(req, 421, "TLS server name and Host differ")
        hub = front.hub
        policy = hub.policy
        auth = req.authorization.decode("latin-1") if req.authorization is not None else None
        # A password seen for the first time is checked with argon2 off the event loop, a
        # few at a time and rate-limited per address (gateway/auth.py).
        who = await hub.authenticate(policy, auth, self.cert, self.client_ip)
        service = hub.service_name(route.device, route.service)
        kind = front.route_kind
        if isinstance(who, AuthFailure):
            hub.log_refusal(
                ANONYMOUS, self.client_ip, route.device, service, kind, "", who.status, who.reason
            )
            return await self.refuse(req, who.status, who.reason, who.challenge)
        decision = policy.decide(who, route.device, service, kind, self.client_ip)
        if not decision.allowed:
            status = decision.status if decision.status in (401, 403) else 403
            hub.log_refusal(
                who,
                self.client_ip,
                route.device,
                service,
                kind,
                decision.rule,
                status,
                decision.reason,
            )
            return await self.refuse(req, status, decision.reason, decision.challenge)
        try:
            lease = hub.admit(route.device, service, kind, who, self.client_ip, decision.rule)
        except StreamError as exc:
            hub.log_refusal(
                who,
                self.client_ip,
                route.device,
                service,
                kind,
                exc.reason,
                exc.code,
                exc.message,
            )
            return await self.refuse(req, exc.code, exc.message)
        # Credentials meant for the gateway stop here; a device's own auth passes through.
        strip_auth = policy.is_gateway_credential(auth)
        lease.on_abort(self.abort)
        ex = _Exchange(self, req, route, lease, strip_auth)
        try:
            return await ex.run()
        finally:
            self.upstream = None
            if self.pipe is None:
                lease.end(ex.result, ex.status)

    def check(self, req: _Request) -> tuple[int, str] | None:
        """What llhttp lets through and a gateway must not forward."""
        if req.too_big:
            return 431, "request head too large"
        if req.version not in ("1.1", "1.0"):
            return 505, f"HTTP/{req.version} is not supported"
        if req.method == b"CONNECT":
            return 405, "CONNECT is not supported"
        if req.hosts != 1:
            return 400, "a request needs exactly one Host" if req.hosts else "request has no Host"
        if req.chunked:
            coding = next(v for n, _, v in req.headers if n == b"transfer-encoding")
            if coding.strip().lower() != b"chunked":
                return 501, "only the chunked transfer coding is supported"
        target = req.target
        if not target.startswith(b"/") and target != b"*":
            scheme, sep, rest = target.partition(b"://")
            if not sep or scheme.lower() not in (b"http", b"https"):
                return 400, "bad request target"
            authority = rest.split(b"/", 1)[0].split(b"?", 1)[0]
            if authority.lower() != req.host.strip().lower():
                return 400, "request target and Host name different sites"
        if self.error is not None and END not in self.events:  # its own body is bad
            return (
                (431, "request head too large")
                if self.error == "431"
                else (
                    400,
                    f"bad request: {self.error}",
                )
            )
        return None

    async def refuse(
        self, req: _Request, status: int, message: str, challenge: str | None = None
    ) -> bool:
        """An answer of the gateway's own; the connection goes on if no body is left unread."""
        close = req.close or req.body or req.upgrade is not None
        if not close:
            while self.events and self.events[0] is END:
                self.events.popleft()
        await self.reply(
            status, message, close=close, challenge=challenge, head=req.method == b"HEAD"
        )
        return not close

    async def reply(
        self,
        status: int,
        message: str,
        *,
        close: bool,
        challenge: str | None = None,
        head: bool = False,
    ) -> None:
        self.front.responses[status] += 1
        self.conn.write(
            http.error_response(status, message, close=close, challenge=challenge, head_only=head)
        )
        if close or self.conn.wbuf:
            self.arm(5.0, SEND)
            try:
                await self.conn.drain()
            except asyncio.CancelledError:
                if self.timed_out is None:
                    raise
                self._deadline_passed()
                self.conn.close()
            finally:
                self.deadline_kind = None

    async def linger(self) -> None:
        """Close as RFC 9112 §9.6 asks: FIN first, then read what the user still sends for a
        while, so that an unread upload does not turn the close into a reset that destroys
        the last answer before the user has read it."""
        conn = self.conn
        if conn.closed or self.peer_done or self.pipe is not None:
            return
        self.arm(LINGER, SEND)
        try:
            await conn.drain()
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
            seen = 0
            while seen < LINGER_BYTES:
                data = await conn.recv_some(READ_SIZE)
                if not data:
                    return
                seen += len(data)
        except asyncio.CancelledError:
            if self.timed_out is None:
                raise
            self._deadline_passed()
        except OSError:
            pass
        finally:
            self.deadline_kind = None

    def abort(self) -> None:
        """The lease was cut (revocation): close both sides now."""
        if self.pipe is not None:
            self.pipe.abort()
        self.conn.close()
        if self.upstream is not None:
            self.upstream.close()

    def finish(self) -> None:
        self.deadline_kind = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pipe is None:
            self.conn.close()


class _Exchange:
    """One request forwarded and its response brought back (response parser callbacks)."""

    __slots__ = (
        "_headers",
        "_in_head",
        "_reason",
        "body_error",
        "body_sent",
        "close_user",
        "done",
        "got_bytes",
        "head_request",
        "key",
        "lease",
        "out",
        "parser",
        "rechunk",
        "req",
        "result",
        "reusable",
        "route",
        "sent",
        "status",
        "strip_auth",
        "switched",
        "until_eof",
        "user",
        "user_11",
    )

    def __init__(
        self, user: _UserConn, req: _Request, route: http.Route, lease: Lease, strip_auth: bool
    ) -> None:
        self.user = user
        self.req = req
        self.route = route
        self.key = (route.device, route.service)
        self.lease = lease
        self.strip_auth = strip_auth
        self.result = "ok"
        self.status: int | None = None
        self.out = bytearray()  # toward the user, written after each parse
        self.head_request = req.method == b"HEAD"
        self.user_11 = req.version == "1.1"
        self.close_user = req.close
        self.reusable = True  # the upstream, once this exchange is over
        self.got_bytes = False  # from the device (a reused upstream that sent some is live)
        self.sent = False  # to the user (after which no error answer can be made)
        self.until_eof = False  # the device ends this body by closing
        self.done = False
        self.switched = False
        self.body_sent = not req.body
        self.body_error: str | None = None
        self.rechunk = False
        self._reason = b""
        self._headers: list[tuple[bytes, bytes, bytes]] = []
        self._in_head = False
        self.parser: httptools.HttpResponseParser | None = None

    # ------------------------------------------------------ response callbacks

    def on_message_begin(self) -> None:
        if self.done:  # bytes after the response: the upstream is not clean
            self.reusable = False
        self._headers = []
        self._reason = b""
        self._in_head = True

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self._headers.append((name.lower(), name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self._in_head = False
        status = self.parser.get_status_code()
        if self.done:
            self.reusable = False
            return
        if status < 200 and status != 101:  # 100 Continue, 103 Early Hints: passed on
            if self.user_11:
                self.out += self.response_head(status, interim=True)
            return
        self.status = status
        self.out += self.response_head(status)
        if self.head_request or status in (204, 304) or status == 101:
            self.done = True
            self.parser = None if self.head_request else self.parser

    def on_body(self, body: bytes) -> None:
        if self.done or self.switched:
            self.reusable = False
        elif self.rechunk:
            self.out += b"%x\r\n%b\r\n" % (len(body), body)
        else:
            self.out += body

    def on_message_complete(self) -> None:
        if self.status is None or self.done:
            return  # an interim response, or the end of a body-less one
        if self.rechunk:
            self.out += b"0\r\n\r\n"
        self.done = True

    def response_head(self, status: int, interim: bool = False) -> bytes:
        """The device's head as the user gets it: hop-by-hop fields dropped, framing redone."""
        assert self.parser is not None
        version = self.parser.get_http_version()
        tokens: frozenset[bytes] = frozenset()
        conn_values = [v for n, _, v in self._headers if n == b"connection"]
        if conn_values:
            tokens = http.connection_tokens(conn_values) - http.PROTECTED
        parts = [b"HTTP/1.1 %d %b\r\n" % (status, self._reason or b"-")]
        has_length = chunked = False
        te_value = b"chunked"
        for lname, name, value in self._headers:
            if lname in http.DROP_FROM_RESPONSE or lname in tokens:
                if lname == b"transfer-encoding":
                    chunked = True
                    te_value = value
                continue
            if lname == b"content-length":
                has_length = True
            parts.append(b"%b: %b\r\n" % (name, value))
        if interim:
            parts.append(b"\r\n")
            return b"".join(parts)
        if status == 101:
            parts.append(b"Connection: upgrade\r\n")
            upgrade = next((v for n, _, v in self._headers if n == b"upgrade"), None)
            if upgrade is not None:
                parts.append(b"Upgrade: %b\r\n" % upgrade)
            parts.append(b"\r\n")
            return b"".join(parts)
        if (version != "1.1" and b"keep-alive" not in tokens) or b"close" in tokens:
            self.reusable = False
        bodyless = self.head_request or status in (204, 304)
        if not bodyless:
            if chunked:
                if self.user_11:
                    self.rechunk = True
                    parts.append(b"Transfer-Encoding: %b\r\n" % te_value)
                else:
                    self.close_user = True  # an HTTP/1.0 client: the body ends at close
            elif not has_length:  # the device ends its body by closing
                self.reusable = False
                self.until_eof = True
                if self.user_11:
                    self.rechunk = True
                    parts.append(b"Transfer-Encoding: chunked\r\n")
                else:
                    self.close_user = True
        if self.req.body and not self.body_sent:
            self.close_user = True  # answered before the upload ended: the rest is not read
        if self.close_user:
            parts.append(b"Connection: close\r\n")
        elif not self.user_11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -------------------------------------------------------------- the exchange

    def request_head(self) -> bytes:
        req = self.req
        tokens = req.tokens
        parts = [b"%b %b HTTP/1.1\r\n" % (req.method, req.target)]
        for lname, name, value in req.headers:
            if lname in http.DROP_FROM_REQUEST or lname in tokens:
                continue
            if lname == b"authorization" and self.strip_auth:
                continue
            if lname == b"expect" and not self.user_11:
                continue
            parts.append(b"%b: %b\r\n" % (name, value))
        if req.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        if req.upgrade is not None:
            parts.append(b"Connection: upgrade\r\nUpgrade: %b\r\n" % req.upgrade)
        parts.append(self.user.forwarded)
        parts.append(b"\r\n")
        return b"".join(parts)

    async def upstream(self, pooled: bool) -> tuple[Conn, bool]:
        """A pooled upstream (reused: True) or a fresh one from the hub."""
        conn = self.user.front.pool.take(self.key) if pooled else None
        if conn is not None:
            return conn, True
        self.user.front.pool.opened += 1
        hub = self.user.front.hub
        return await hub.open_upstream(
            self.route.device, self.route.service, ServiceKind.HTTP
        ), False

    async def run(self) -> bool:
        user = self.user
        front = user.front
        head = self.request_head()
        for attempt in (0, 1):
            try:
                conn, reused = await self.upstream(pooled=attempt == 0)
            except StreamError as exc:
                self.result = exc.reason
                self.status = exc.code
                return await user.refuse(self.req, exc.code, exc.message)
            user.upstream = conn
            retry = reused and attempt == 0 and not self.req.body
            retry = retry and self.req.method in http.IDEMPOTENT
            try:
                keep = await self.forward(conn, head, retry)
            except _Retry:
                conn.close()
                continue
            except _Deadline as exc:
                conn.close()
                return await self.timed_out(str(exc))
            except (OSError, EOFError):
                conn.close()
                self.result = "aborted" if user.conn.closed else "device_closed"
                if user.conn.closed or self.sent:
                    return False
                return await self.bad_gateway("the device closed the connection")
            if self.switched:
                return False
            if self.reusable and self.done and self.body_sent and not conn.closed:
                front.pool.put(self.key, conn)
            else:
                conn.close()
            return keep
        return await self.bad_gateway("the device closed the connection")

    async def bad_gateway(self, message: str) -> bool:
        self.status = 502
        if self.body_error is not None:
            self.result = "bad_request"
            self.status = 400
            await self.user.reply(400, f"bad request: {self.body_error}", close=True)
            return False
        await self.user.reply(502, message, close=True)
        return False

    async def timed_out(self, kind: str) -> bool:
        self.result = "timeout"
        if self.sent or self.user.conn.closed:
            return False
        if kind == BODY:
            self.status = 408
            await self.user.reply(408, "request body not received in time", close=True)
        else:
            self.status = 504
            await self.user.reply(504, "the device did not answer in time", close=True)
        return False

    async def forward(self, conn: Conn, head: bytes, retry: bool) -> bool:
        user = self.user
        counts = self.lease.bytes
        events = user.events
        self.parser = httptools.HttpResponseParser(self)
        body_task: asyncio.Task[None] | None = None
        # A request whose body is already parsed goes out in one write; else a task streams it.
        if not self.req.body:  # (its END was queued with its head; gone if this is a retry)
            if events and events[0] is END:
                events.popleft()
            conn.write(head)
            counts[0] += len(head)
        else:
            out = bytearray(head)
            ended = self.collect_body(out)
            conn.write(bytes(out))
            counts[0] += len(out)
            if not ended:
                body_task = asyncio.ensure_future(self.send_body(conn))
        first = True  # nothing can be there before the request went out: wait, then read
        try:
            while not self.done:
                user.arm(user.front.io_timeout, DEVICE)
                try:
                    data = await conn.recv_some(READ_SIZE, wait=first)
                    first = False
                except asyncio.CancelledError:
                    if user.timed_out is None:
                        raise
                    raise user._deadline_passed() from None
                except OSError:
                    if retry and not self.got_bytes and not user.conn.closed:
                        raise _Retry from None
                    raise
                if not data:
                    if retry and not self.got_bytes:
                        raise _Retry
                    if self.until_eof:
                        self.eof_ends_body()  # a close-delimited body is complete
                        break
                    if self.sent:
                        self.close_user = True  # cut short: the user sees it truncated
                        raise EOFError("device closed in the middle of a response")
                    raise EOFError("device closed")
                self.got_bytes = True
                counts[1] += len(data)
                tail = self.feed_response(data)
                out = self.out
                if out:
                    self.sent = True
                    user.conn.write(bytes(out))
                    out.clear()
                    if len(user.conn.wbuf) > HIGH_WATER:
                        await self.drain_user()
                if tail is not None:
                    await self.switch(conn, tail, body_task)
                    body_task = None
                    return False
        finally:
            user.deadline_kind = None
            if body_task is not None and not body_task.done():
                body_task.cancel()
                self.close_user = True
                self.reusable = False
        if body_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await body_task
        if self.req.upgrade is not None:
            return False  # the device said no to the upgrade: the rest is not HTTP
        return not self.close_user

    def eof_ends_body(self) -> None:
        self.reusable = False
        if self.rechunk:
            self.out += b"0\r\n\r\n"
        self.done = True
        if self.out:
            self.user.conn.write(bytes(self.out))
            self.out.clear()

    def feed_response(self, data: bytes) -> bytes | None:
        """Parse bytes from the device; the bytes after a 101 head, if it switched."""
        parser = self.parser
        if parser is None:  # after a HEAD response: anything more is stray
            self.reusable = False
            return None
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.status == 101 and self.req.upgrade is not None:
                self.switched = True
                return data[exc.args[0] :]
            self.reusable = False
            raise EOFError("the device switched protocols unasked") from None
        except httptools.HttpParserError as exc:
            self.reusable = False
            if not self.sent and self.status is None:
                self.out.clear()
                raise EOFError(f"bad response from the device: {exc}") from None
            self.close_user = True
            self.done = True
        return None

    async def drain_user(self) -> None:
        user = self.user
        user.arm(user.front.io_timeout, SEND)
        try:
            await user.conn.drain()
        except asyncio.CancelledError:
            if user.timed_out is None:
                raise
            raise user._deadline_passed() from None

    def collect_body(self, out: bytearray) -> bool:
        """Frame the queued body events into ``out``; True when the body ended among them."""
        events = self.user.events
        chunked = self.req.chunked
        while events:
            event = events[0]
            if isinstance(event, _Request):
                return False  # cannot happen before END; leave it for the next exchange
            events.popleft()
            if event is END:
                if chunked:
                    out += b"0\r\n\r\n"
                self.body_sent = True
                return True
            assert isinstance(event, bytes)
            if chunked:
                out += b"%x\r\n%b\r\n" % (len(event), event)
            else:
                out += event
        return False

    async def send_body(self, conn: Conn) -> None:
        """Stream the rest of the request body, reading from the user only as the device
        takes it (flow control)."""
        user = self.user
        counts = self.lease.bytes
        out = bytearray()
        try:
            while True:
                if len(conn.wbuf) > HIGH_WATER:
                    await conn.drain()
                user.arm(user.front.io_timeout, BODY)
                data = await user.conn.recv_some(READ_SIZE)
                user.arm(user.front.io_timeout, DEVICE)
                if not data:
                    self.body_error = "the upload ended before its body"
                    conn.close()
                    return
                user.feed(data)
                ended = self.collect_body(out)
                if out:
                    conn.write(bytes(out))
                    counts[0] += len(out)
                    out.clear()
                if ended:
                    return
                if user.error is not None:
                    self.body_error = user.error
                    conn.close()
                    return
        except (OSError, EOFError):
            conn.close()

    async def switch(self, conn: Conn, tail: bytes, body_task: asyncio.Task[None] | None) -> None:
        """The device answered 101: the two sockets become one raw pipe."""
        user = self.user
        if body_task is not None:
            body_task.cancel()
        await self.drain_user()
        user_rest = (user.upgrade_tail or b"") + bytes(user.conn.rbuf)
        user.conn.rbuf.clear()
        device_rest = tail + bytes(conn.rbuf)
        conn.rbuf.clear()
        lease = self.lease
        counts = lease.bytes

        def closed() -> None:
            lease.end("upgraded", 101)

        user.pipe = Pipe(user.conn.detach(), conn.detach(), on_close=closed, counter=counts)
        user.pipe.start(user_rest, device_rest)


class _Retry(Exception):
    """A reused upstream failed before any response byte: try a fresh one."""
