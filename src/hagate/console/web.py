"""The console's web server: the page, its JSON (docs/console.md) and its live updates (SSE).

A thread per connection, at most ``MAX_CONNECTIONS`` at a time from the network and as many
from loopback, ``CONNECTIONS_PER_ADDRESS`` from one network address (more are closed at once),
each with a read timeout and a deadline for the whole request, so a slow or silent client holds
one thread for a bounded time and one address cannot take every slot. Nothing but the static
page and ``POST /api/login`` answers without a session; live-update streams need a session
too, at most ``STREAMS_PER_SESSION`` each, ``STREAMS_PER_USER`` per user and ``MAX_STREAMS``
overall. Refused logins are logged, the rate-limited ones (429, which cost nothing to send) at
most once a second with a count.

Every request's Host must be an address literal, ``localhost`` or a ``--public-name`` (a
rebinding DNS name gets 421). A POST needs ``Content-Type: application/json`` and an Origin
equal to this console's own; actions also need the operator role and the session's CSRF token
in ``X-CSRF-Token``. The cookie is HttpOnly and SameSite=Strict (and Secure over HTTPS).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hagate.console.auth import ConsoleAuth, ConsoleSession, LoginRefused, Role
from hagate.console.poller import Cluster
from hagate.console.views import Views
from hagate.gateway.admin.auth import RefusalLog, host_is_local
from hagate.gateway.admin.limits import PeerSlots
from hagate.net.tls import peer_identity

log = logging.getLogger("hagate.console")
audit = logging.getLogger("hagate.console.audit")

COOKIE = "hagate_console"
MAX_CONNECTIONS = 128  # from the network together, and from loopback together
CONNECTIONS_PER_ADDRESS = 32  # from one network address (loopback's peers all look alike)
MAX_STREAMS = 32
STREAMS_PER_SESSION = 4
STREAMS_PER_USER = 8  # one user's sessions together cannot take every stream
READ_TIMEOUT = 10.0
REQUEST_DEADLINE = 10.0  # s to send the whole request (head and body)
KEEPALIVE_S = 15.0
GONE_CHECK_S = 1.0  # a live-update stream looks this often whether its client hung up
MAX_BODY = 8192
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class ConsoleApp:
    """Everything the handlers share."""

    cluster: Cluster
    views: Views
    auth: ConsoleAuth
    public_names: frozenset[str] = frozenset()
    audit_file: Path | None = None
    streams: int = 0
    user_streams: dict[str, int] = field(default_factory=dict)
    throttled: RefusalLog = field(default_factory=RefusalLog)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _static: dict[str, bytes] = field(default_factory=dict)

    def static(self, name: str) -> bytes:
        if name not in self._static:
            self._static[name] = (
                resources.files("hagate.console").joinpath("static", name).read_bytes()
            )
        return self._static[name]

    def host_ok(self, host: str | None) -> bool:
        if host_is_local(host):
            return True
        name = (host or "").rsplit(":", 1)[0].lower() if host else ""
        return name in self.public_names

    def record(
        self, session: ConsoleSession, action: str, detail: dict[str, Any], ok: bool
    ) -> None:
        """The audit line of one action (logger ``hagate.console.audit`` and ``--audit-log``)."""
        line = json.dumps(
            {"time": round(time.time(), 3), "user": session.user, "action": action, "ok": ok}
            | detail,
            separators=(",", ":"),
        )
        audit.warning("%s", line)
        self.views.note_action(json.loads(line))
        if self.audit_file is not None:
            try:
                with self.audit_file.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as exc:
                log.error("audit log %s: %s", self.audit_file, exc)

    def open_stream(self, session: ConsoleSession) -> bool:
        with self._lock:
            mine = self.user_streams.get(session.user, 0)
            if (
                self.streams >= MAX_STREAMS
                or session.streams >= STREAMS_PER_SESSION
                or mine >= STREAMS_PER_USER
            ):
                return False
            self.streams += 1
            session.streams += 1
            self.user_streams[session.user] = mine + 1
            return True

    def close_stream(self, session: ConsoleSession) -> None:
        with self._lock:
            self.streams -= 1
            session.streams -= 1
            left = self.user_streams.get(session.user, 0) - 1
            if left > 0:
                self.user_streams[session.user] = left
            else:
                self.user_streams.pop(session.user, None)


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: ConsoleApp, tls: ssl.SSLContext | None = None
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.tls = tls
        self.slots = PeerSlots(MAX_CONNECTIONS, CONNECTIONS_PER_ADDRESS, MAX_CONNECTIONS)
        self.deadlines: dict[int, threading.Timer] = {}
        super().__init__(address, Handler)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.take(client_address[0]):
            self.shutdown_request(request)  # full: close now rather than queue without bound
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.give(client_address[0])
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # A client that trickles its request a byte at a time is cut at REQUEST_DEADLINE
        # (the per-read timeout alone would let it hold a slot for ever).
        timer = threading.Timer(REQUEST_DEADLINE, _abort, (request,))
        timer.daemon = True
        timer.start()
        self.deadlines[threading.get_ident()] = timer
        try:
            request.settimeout(READ_TIMEOUT)
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            super().process_request_thread(request, client_address)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
        finally:
            timer.cancel()
            self.deadlines.pop(threading.get_ident(), None)
            self.slots.give(client_address[0])

    def arrived(self) -> None:
        """The request has been read in full: no deadline from now on (live updates)."""
        timer = self.deadlines.pop(threading.get_ident(), None)
        if timer is not None:
            timer.cancel()


def _hung_up(sock: socket.socket) -> bool:
    """Whether a live-update client has closed (or sent anything: it has nothing to send
    after its request, so that too ends the stream)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _abort(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    server_version = "hagate-console"
    sys_version = ""

    # -- plumbing ------------------------------------------------------------------------

    @property
    def app(self) -> ConsoleApp:
        return self.server.app

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(
        self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", CSP)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, data: Any, extra: dict[str, str] | None = None) -> None:
        self._send(code, "application/json", json.dumps(data).encode(), extra)

    def _error(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._json(code, {"error": message}, extra)

    def _cookie(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        return morsel.value if morsel is not None else None

    def _session(self) -> ConsoleSession | None:
        now = time.time()
        self._new_cookie = None
        found = self.app.auth.session(self._cookie(), now)
        if found is None and isinstance(self.connection, ssl.SSLSocket):
            ident = peer_identity(self.connection)
            if ident is not None:
                try:
                    found = self.app.auth.login_certificate(
                        self.app.views.policy(), ident, self.client_address[0], now
                    )
                except LoginRefused:
                    return None
                self._new_cookie = found
        return found

    _new_cookie: ConsoleSession | None = None

    def _set_cookie(self, session: ConsoleSession | None) -> dict[str, str]:
        secure = "; Secure" if self.server.tls is not None else ""
        if session is None:
            value = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        else:
            value = f"{COOKIE}={session.sid}; Path=/; HttpOnly; SameSite=Strict{secure}"
        return {"Set-Cookie": value}

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        return bool(origin and host and origin == f"{self.server.scheme}://{host}")

    def _body(self) -> dict[str, Any] | None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self._error(415, "Content-Type must be application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(413, f"body must be at most {MAX_BODY} bytes")
            return None
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._error(400, "body must be a JSON object")
            return None
        return data

    # -- GET -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.server.arrived()
        if not self.app.host_ok(self.headers.get("Host")):
            self._error(421, "unknown Host: use the console's address or a --public-name")
            return
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(200, ctype, self.app.static(name))
            return
        if not path.startswith("/api/"):
            self._error(404, "not found")
            return
        session = self._session()
        fresh = self._new_cookie
        extra = self._set_cookie(fresh) if fresh is not None else None
        if session is None:
            self._error(401, "log in first")
            return
        if path == "/api/me":
            self._json(200, session.as_json(), extra)
        elif path == "/api/events":
            self._events(session)
        else:
            code, data = self.app.views.get(path, query)
            self._json(code, data, extra)

    def _events(self, session: ConsoleSession) -> None:
        app = self.app
        if not app.open_stream(session):
            self._error(429, "too many live-update streams", {"Retry-After": "5"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.flush()
            self.connection.settimeout(READ_TIMEOUT)
            cluster = app.cluster
            sent = -1
            wrote = time.monotonic()
            while app.auth.alive(session, time.time()):
                with cluster.changed:
                    if cluster.revision == sent:
                        cluster.changed.wait(GONE_CHECK_S)
                if _hung_up(self.connection):
                    break  # the client left: its stream slot is free now, not at the next write
                rev, shown = cluster.shown()
                if rev != sent:
                    self.wfile.write(f"id: {rev}\nevent: cluster\ndata: {shown}\n\n".encode())
                    sent = rev
                elif time.monotonic() - wrote >= KEEPALIVE_S:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    continue
                self.wfile.flush()
                wrote = time.monotonic()
        except (OSError, ssl.SSLError):
            pass
        finally:
            app.close_stream(session)
            self.close_connection = True

    # -- POST ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        if not self.app.host_ok(self.headers.get("Host")):
            self._error(421, "unknown Host: use the console's address or a --public-name")
            return
        if not self._same_origin():
            self._error(403, "cross-origin request refused (Origin must be this console)")
            return
        path = urlsplit(self.path).path
        body = self._body()
        self.server.arrived()
        if body is None:
            return
        if path == "/api/login":
            self._login(body)
            return
        session = self._session()
        if session is None:
            self._error(401, "log in first")
            return
        if not self.app.auth.csrf_ok(session, self.headers.get("X-CSRF-Token")):
            if path.startswith("/api/actions/"):  # an attempted action: audited as refused
                refused = {"refused": "missing or wrong X-CSRF-Token"}
                self.app.record(session, path.rsplit("/", 1)[-1], refused, False)
            self._error(403, "missing or wrong X-CSRF-Token")
            return
        if path == "/api/logout":
            self.app.auth.logout(session)
            with self.app.cluster.changed:  # its live-update streams end now
                self.app.cluster.changed.notify_all()
            self._json(200, {"ok": True}, self._set_cookie(None))
            return
        if session.role is not Role.OPERATOR:
            self.app.record(session, path.rsplit("/", 1)[-1], {"refused": "not an operator"}, False)
            self._error(403, f"{session.user} is not an operator: the console is read-only")
            return
        code, data, action = self.app.views.act(path, body, session.user)
        if action:
            detail = {k: v for k, v in body.items() if k in ("device", "node", "jti", "ban")}
            self.app.record(session, action, detail | {"status": code}, code == 200)
        self._json(code, data)

    def _login(self, body: dict[str, Any]) -> None:
        user, password = body.get("user"), body.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            self._error(400, 'want {"user": ..., "password": ...}')
            return
        address = self.client_address[0]
        try:
            session = self.app.auth.login_password(
                self.app.views.policy(), user, password, address, time.time()
            )
        except LoginRefused as exc:
            line = f"console login refused for {user[:64]!r} from {address}: {exc}"
            if exc.status == 429:  # free to send again and again: a line a second at most
                self.app.throttled.note(time.monotonic(), line, log)
            else:  # bounded by the limiter (a wrong password costs a hash, then a wait)
                log.warning("%s", line)
            extra = (
                {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.status == 429 else {}
            )
            self._error(exc.status, exc.message, extra)
            return
        log.info("console login: %s (%s) from %s", session.user, session.role.value, address)
        self._json(200, session.as_json(), self._set_cookie(session))


def serve(server: ConsoleServer) -> None:
    """Until SIGINT/SIGTERM (the caller installs the handlers)."""
    try:
        server.serve_forever(0.2)
    finally:
        server.server_close()


def ensure_private(path: Path) -> None:
    """Audit log: created 0600 (it names users and devices)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
