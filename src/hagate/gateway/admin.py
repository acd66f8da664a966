"""The node-local admin listener: ``/healthz`` for vrrp_script, ``/metrics`` for Prometheus, and
the JSON the operator's console reads (``/api/summary``, ``/api/devices``, ``/api/access``,
``POST /api/devices/NAME/kick``; docs/console.md).

It runs in a thread of its own, so that it answers within milliseconds even while the event
loop is busy with thousands of agents redialling after a failover (a slow answer would make
`hagate gateway check` fail and the new master lower its own priority). It still reports the
loop's health: the loop stamps ``tick`` on every heartbeat and a stale stamp means unhealthy.

The device and access views are read *in* the event loop (one short call, bounded by a
timeout) and filtered and paged here in the thread: the loop's dicts are never iterated from
another thread.

``/healthz`` and ``/metrics`` are open (vrrp_script and Prometheus read them). Every ``/api/*``
request needs ``Authorization: Bearer TOKEN`` when ``[listen] admin_token_file`` is set (401
otherwise); without a token the reads stay open to whoever reaches the listener (bind it to
loopback) and the kick is refused (403): any local user could reach a loopback port. Every
``/api/*`` request also needs a Host that is an address literal or ``localhost`` (no DNS
rebinding), and the kick ``Content-Type: application/json``, which no cross-site form can send
without a CORS preflight this server never answers.

Off loopback (``[listen] admin`` any other address) the config load already insisted on a
token, and on ``admin_tls = true`` or ``admin_insecure = true`` (config.admin_exposure). With
TLS the listener serves the gateway's own server certificate ([tls] cert/key, the console
checks it against [tls] ca) and tells the two protocols apart by the first byte a client sends
(a TLS handshake record is 0x16): ``/healthz`` and ``/metrics`` still answer plain HTTP
(`hagate gateway check` and Prometheus carry no secret), ``/api/*`` only over TLS. Connections
from the network are bounded per client address and overall, apart from loopback's (so a flood
from the network cannot make the local vrrp_script's ``/healthz`` fail), each read has a
timeout.
"""

from __future__ import annotations

import concurrent.futures
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from hagate.gateway.bans import MAX_BAN_S
from hagate.gateway.config import ConfigError, admin_exposure, is_loopback, read_token_file

if TYPE_CHECKING:
    from hagate.gateway.accesslog import AccessEntry
    from hagate.gateway.server import Gateway

LOOP_TIMEOUT = 2.0  # a view the loop cannot build within this is a 503, never a hang
MAX_LIMIT = 500  # devices or access entries in one answer
MAX_QUERY = 100  # characters of a search string
MAX_BODY = 4096
MAX_KNOWN = 200_000  # devices remembered (offline ones are forgotten oldest first)
MAX_CONNECTIONS = 128  # at once, from every non-loopback peer together
CONNECTIONS_PER_PEER = 16  # at once, from one client address
MAX_LOCAL_CONNECTIONS = 1024  # at once, from loopback (a bound on threads)
READ_TIMEOUT = 10.0  # s a client may stay silent (the TLS handshake included)
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
_OK_RESULTS = frozenset({"ok", "upgraded", "allowed"})
NEED_TOKEN = (
    "actions need the admin token: set [listen] admin_token_file in gateway.toml (docs/gateway.md)"
)
NEED_TLS = "this admin listener serves /api/* over https only ([listen] admin_tls)"
log = logging.getLogger("hagate.gateway.admin")


@dataclass(slots=True)
class DeviceRecord:
    """What this node knows of one device: its live session if any, and its history here."""

    name: str
    online: bool = False
    session: str = ""
    since: float = 0.0  # wall clock the current session was first seen (by this book)
    last_seen: float = 0.0  # wall clock, last time it was online
    services: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    streams: int = 0
    bytes_in: int = 0  # user -> device, streams ended on this node
    bytes_out: int = 0
    live_in: int = 0  # streams still running
    live_out: int = 0
    last_error: str = ""
    last_error_at: float = 0.0

    def as_json(self, node: str, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "online": self.online,
            "node": node,
            "session": self.session if self.online else None,
            "since": round(self.since, 3) if self.online else None,
            "age_s": round(max(0.0, now - self.since), 1) if self.online else None,
            "last_seen": round(self.last_seen, 3),
            "services": self.services,
            "routes": self.routes,
            "streams": self.streams,
            "bytes_in": self.bytes_in + self.live_in,
            "bytes_out": self.bytes_out + self.live_out,
            "last_error": self.last_error or None,
            "last_error_at": round(self.last_error_at, 3) if self.last_error else None,
        }


class DeviceBook:
    """Devices seen by this gateway process; ``refresh`` runs in the event loop.

    A session's age is counted from when the book first saw it (the gateway does not stamp
    sessions): the console asks every second, so ages are right to about a second.
    """

    def __init__(self) -> None:
        self.records: dict[str, DeviceRecord] = {}
        self.changes = 0  # bumped when a device comes or goes: the console's cue to re-read
        self._last_entry: AccessEntry | None = None
        self.access_seen = 0

    def refresh(self, gw: Gateway, now: float) -> list[DeviceRecord]:
        records = self.records
        for name, session in gw.sessions.items():
            rec = records.get(name)
            if rec is None:
                rec = records[name] = DeviceRecord(name)
            if not rec.online or rec.session != session.sid:
                rec.online, rec.session, rec.since = True, session.sid, now
                rec.services = [s.to_json() for s in session.services.values()]
                rec.routes = routes_of(gw, session)
                self.changes += 1
            rec.last_seen = now
            rec.streams = rec.live_in = rec.live_out = 0
        for rec in records.values():
            if rec.online and rec.name not in gw.sessions:
                rec.online = False
                rec.streams = rec.live_in = rec.live_out = 0
                self.changes += 1
        for lease in gw.streams:
            rec = records.get(lease.device)
            if rec is not None:
                rec.streams += 1
                rec.live_in += lease.bytes[0]
                rec.live_out += lease.bytes[1]
        for entry in self._new_entries(gw.access.recent):
            rec = records.get(entry.device)
            if rec is None:
                continue  # a refusal for a device never seen here: not a device we know
            rec.bytes_in += entry.bytes_in
            rec.bytes_out += entry.bytes_out
            if entry.result not in _OK_RESULTS:
                status = f" ({entry.status})" if entry.status is not None else ""
                rec.last_error, rec.last_error_at = f"{entry.result}{status}", entry.time
        if len(records) > MAX_KNOWN:
            offline = sorted((r for r in records.values() if not r.online), key=_seen)
            for rec in offline[: len(records) - MAX_KNOWN]:
                del records[rec.name]
        return list(records.values())

    def _new_entries(self, recent: list[AccessEntry]) -> list[AccessEntry]:
        """Entries appended since the last call (the list is trimmed from the front)."""
        start = 0
        last = self._last_entry
        if last is not None:
            for i in range(len(recent) - 1, -1, -1):
                if recent[i] is last:
                    start = i + 1
                    break
        fresh = recent[start:]
        if fresh:
            self._last_entry = fresh[-1]
            self.access_seen += len(fresh)
        return fresh

    def note_error(self, device: str, error: str, now: float) -> None:
        rec = self.records.get(device)
        if rec is not None:
            rec.last_error, rec.last_error_at = error, now


def _seen(rec: DeviceRecord) -> float:
    return rec.last_seen


def routes_of(gw: Gateway, session: Any) -> dict[str, str]:
    """How users reach each service (as ``Gateway.attach`` tells the agent)."""
    from hagate.gateway import http
    from hagate.tunnel.wire import ServiceKind

    routes: dict[str, str] = {}
    default_http = session.service(None)
    for svc in session.services.values():
        if svc.kind is ServiceKind.HTTP:
            host = f"{session.device}.{gw.cfg.domain}"
            if svc is not default_http:
                host = f"{svc.name}{http.SERVICE_SEP}{host}"
            routes[svc.name] = host
            continue
        port = gw.tcp.port_of(session.device, svc.name)
        routes[svc.name] = f"tcp:{port}" if port is not None and port in gw.tcp.socks else "connect"
    return routes


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """``/api/devices``: a name substring, online/offline/all, keyset paging by name."""

    q: str = ""
    status: str = "all"
    after: str = ""
    limit: int = 50

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> DeviceQuery:
        def one(key: str, default: str) -> str:
            return query.get(key, [default])[0]

        status = one("status", "all")
        if status not in ("all", "online", "offline"):
            raise ValueError("status must be all, online or offline")
        try:
            limit = int(one("limit", "50"))
        except ValueError:
            raise ValueError("limit must be a number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        q = one("q", "")
        if len(q) > MAX_QUERY:
            raise ValueError(f"q is longer than {MAX_QUERY} characters")
        return cls(q.lower(), status, one("after", "")[: MAX_QUERY * 3], limit)

    def page(self, records: list[DeviceRecord], node: str, now: float) -> dict[str, Any]:
        want_online = {"all": None, "online": True, "offline": False}[self.status]
        q = self.q.lower()
        matched = [
            r
            for r in records
            if (want_online is None or r.online is want_online) and q in r.name.lower()
        ]
        matched.sort(key=_name)
        rows = [r for r in matched if r.name > self.after] if self.after else matched
        page = rows[: self.limit]
        more = len(rows) > self.limit
        return {
            "node": node,
            "now": round(now, 3),
            "known": len(records),
            "online": sum(1 for r in records if r.online),
            "matched": len(matched),
            "devices": [r.as_json(node, now) for r in page],
            "next": page[-1].name if more and page else None,
        }


def _name(rec: DeviceRecord) -> str:
    return rec.name


def access_page(
    entries: list[AccessEntry], query: dict[str, list[str]], limit_default: int = 100
) -> list[dict[str, Any]]:
    """The newest entries (oldest first) matching ``device``/``identity``/``result``."""
    try:
        limit = int(query.get("limit", [str(limit_default)])[0])
    except ValueError:
        raise ValueError("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    device = query.get("device", [""])[0]
    identity = query.get("identity", [""])[0].lower()
    result = query.get("result", ["all"])[0]
    if result not in ("all", "allowed", "denied"):
        raise ValueError("result must be all, allowed or denied")
    out: list[dict[str, Any]] = []
    for entry in reversed(entries):
        if device and entry.device != device:
            continue
        if identity and identity not in entry.identity.lower():
            continue
        allowed = entry.result in _OK_RESULTS
        if (result == "allowed" and not allowed) or (result == "denied" and allowed):
            continue
        out.append(json.loads(entry.json()))
        if len(out) >= limit:
            break
    out.reverse()
    return out


def host_is_local(host_header: str | None) -> bool:
    """An address literal or ``localhost`` (a rebinding DNS name is neither)."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class AdminAuth:
    """Who may use ``/api/*``: the bearer token's holder, or (no token) readers on loopback.

    ``check`` is pure: it returns None (allowed) or the refusal's status and reason.
    """

    token: bytes | None = None

    def check(self, method: str, authorization: str | None) -> tuple[int, str] | None:
        if self.token is None:
            return None if method == "GET" else (403, NEED_TOKEN)
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "missing Authorization: Bearer <admin token>"
        if not hmac.compare_digest(given.strip().encode(errors="replace"), self.token):
            return 401, "wrong admin token"
        return None


@dataclass(slots=True)
class RefusalLog:
    """Refused requests, logged at most once a second (a local user must not flood the log)."""

    refused: int = 0
    _unlogged: int = 0
    _last: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, now: float, line: str) -> None:
        with self._lock:
            self.refused += 1
            if now - self._last < 1.0:
                self._unlogged += 1
                return
            more, self._unlogged, self._last = self._unlogged, 0, now
        log.warning("admin: %s%s", line, f" (and {more} more refused)" if more else "")


@dataclass(slots=True)
class PeerSlots:
    """Connections open at once: at most ``per_peer`` from one network address and ``total``
    from the network together, so a flood from elsewhere cannot take the slots the local
    ``hagate gateway check`` (vrrp_script) needs; loopback peers (every local user looks the
    same there) share only ``local_total``, a bound on threads, not a fairness rule."""

    total: int = MAX_CONNECTIONS
    per_peer: int = CONNECTIONS_PER_PEER
    local_total: int = MAX_LOCAL_CONNECTIONS
    _open: dict[str, int] = field(default_factory=dict)
    _remote: int = 0
    _local: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, peer: str) -> bool:
        with self._lock:
            if is_loopback(peer):
                if self._local >= self.local_total:
                    return False
                self._local += 1
                return True
            mine = self._open.get(peer, 0)
            if mine >= self.per_peer or self._remote >= self.total:
                return False
            self._open[peer] = mine + 1
            self._remote += 1
            return True

    def give(self, peer: str) -> None:
        with self._lock:
            if is_loopback(peer):
                self._local -= 1
                return
            left = self._open.get(peer, 0) - 1
            if left > 0:
                self._open[peer] = left
            else:
                self._open.pop(peer, None)
            self._remote -= 1


def admin_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The admin listener's TLS: the gateway's own server certificate, TLS 1.2 or newer (curl
    and Prometheus speak it too), no client certificate (the bearer token authenticates)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        why = f"cannot load [tls] cert/key ({cert}, {key}): {exc}"
        raise ConfigError(f"[listen] admin_tls: {why}") from None
    return ctx


def _speaks_tls(sock: socket.socket) -> bool:
    """Whether the client's first byte opens a TLS handshake (it is only peeked at)."""
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    return first[:1] == bytes([TLS_HANDSHAKE])


_ACTIONS = frozenset({"kick", "unban"})


def start_notes(address: tuple[str, int], has_token: bool, insecure: bool) -> list[tuple[int, str]]:
    """What the log says when the listener starts: who can read it, and what crosses in
    clear (the config load has refused the exposures that are never right)."""
    host, port = address[0], address[1]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    notes: list[tuple[int, str]] = []
    if not has_token:
        notes.append((
            logging.INFO,
            f"admin listener on {where} (loopback) without a token: /api/* reads (devices, "
            "access log) are open to every local user, actions are off "
            "([listen] admin_token_file)",
        ))  # fmt: skip
    if insecure and not is_loopback(host):
        notes.append((
            logging.WARNING,
            f"admin listener on {where} in plain HTTP (admin_insecure = true): the admin "
            "token crosses the network in clear; prefer admin_tls = true",
        ))  # fmt: skip
    return notes


def ban_seconds(body: dict[str, Any], query: dict[str, list[str]]) -> int | None:
    """The kick's optional ban, in whole seconds: ``"ban"`` in the JSON body or ``?ban=`` in
    the URL (not both, unless equal); 1..MAX_BAN_S, else ValueError."""
    given: list[object] = []
    if body.get("ban") is not None:
        given.append(body["ban"])
    if "ban" in query:
        given.append(query["ban"][0])
    if not given:
        return None
    values: set[int] = set()
    for raw in given:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S}")
        text = str(raw).strip()
        if not text.isdigit() or len(text) > 6:
            raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S}")
        values.add(int(text))
    if len(values) > 1:
        raise ValueError("ban given twice (body and URL) with two values")
    seconds = values.pop()
    if not 1 <= seconds <= MAX_BAN_S:
        raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S} (24 h)")
    return seconds


class AdminServer:
    """``/healthz`` (200 or 503, JSON), ``/metrics`` and the console's JSON, in a thread.

    ``gateway`` gives the console's views; when it is not passed it is found as the object
    whose bound method ``health`` is (the gateway passes ``self.health``). ``token_file``,
    ``tls`` and ``insecure`` default to the gateway's ``[listen] admin_token_file``,
    ``admin_tls`` and ``admin_insecure`` (``cert``/``key`` to its ``[tls]`` ones); a token file
    group or others may read, or an exposure ``admin_exposure`` refuses, is a ConfigError
    here, so the gateway does not start.
    """

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], dict[str, object]],
        metrics: Callable[[], str],
        gateway: Gateway | None = None,
        token_file: Path | None = None,
        *,
        tls: bool | None = None,
        insecure: bool | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        gw: Gateway | None = gateway or getattr(health, "__self__", None)
        if gw is not None and not hasattr(gw, "sessions"):
            gw = None
        self.gateway = gw
        self.book = DeviceBook()
        cfg = gw.cfg if gw is not None else None
        if token_file is None and cfg is not None:
            token_file = cfg.admin_token_file
        tls = tls if tls is not None else bool(cfg is not None and cfg.admin_tls)
        insecure = (
            insecure if insecure is not None else bool(cfg is not None and cfg.admin_insecure)
        )
        problem = admin_exposure(host, token_file is not None, tls, insecure)
        if problem is not None:
            raise ConfigError(f"[listen] {problem[0]}: {problem[1]}")
        token = read_token_file(token_file).encode() if token_file is not None else None
        self.tls: ssl.SSLContext | None = None
        if tls:
            cert = cert or (cfg.cert if cfg is not None else None)
            key = key or (cfg.key if cfg is not None else None)
            if cert is None or key is None:
                raise ConfigError("[listen] admin_tls: needs [tls] cert and key")
            self.tls = admin_tls_context(cert, key)
        self.auth = AdminAuth(token)
        self.insecure = insecure
        self.refusals = RefusalLog()
        self.slots = PeerSlots()
        admin = self

        class Handler(BaseHTTPRequestHandler):
            timeout = READ_TIMEOUT

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path, query = url.path, parse_qs(url.query)
                if path == "/healthz":
                    state = health()
                    body = json.dumps(state).encode()
                    self._send(200 if state.get("ok") else 503, "application/json", body)
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", metrics().encode())
                elif path.startswith("/api/"):
                    if not self._api_ok("GET", path):
                        return
                    if self._authorized("GET", path):
                        self._json(*admin.get(path, query))
                else:
                    self._send(404, "text/plain", b"try /healthz or /metrics\n")

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                path = url.path
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                try:
                    length = int(self.headers.get("Content-Length") or "0")
                except ValueError:
                    length = -1
                if not self._api_ok("POST", path) or not self._authorized("POST", path):
                    pass
                elif ctype != "application/json":
                    self._json(415, {"error": "Content-Type must be application/json"})
                elif not 0 <= length <= MAX_BODY:
                    self._json(413, {"error": f"body must be at most {MAX_BODY} bytes"})
                else:
                    try:
                        body = json.loads(self.rfile.read(length) or b"{}")
                    except ValueError:
                        self._json(400, {"error": "body is not JSON"})
                        return
                    if not isinstance(body, dict):
                        self._json(400, {"error": "body must be a JSON object"})
                        return
                    self._json(*admin.post(path, body, parse_qs(url.query)))

            def _api_ok(self, method: str, path: str) -> bool:
                """True, or the request is answered: a rebinding Host (421), or plain HTTP on
                a TLS listener (403: the token, if sent, has crossed in clear; say so)."""
                if not host_is_local(self.headers.get("Host")):
                    self._json(421, {"error": "Host must be an address or localhost"})
                    return False
                if admin.tls is not None and not isinstance(self.connection, ssl.SSLSocket):
                    peer = self.client_address[0]
                    sent = (
                        " (it sent a token in clear)" if self.headers.get("Authorization") else ""
                    )
                    admin.refusals.note(
                        time.monotonic(), f"403 {method} {path} from {peer}: plain HTTP{sent}"
                    )
                    self._json(403, {"error": NEED_TLS})
                    return False
                return True

            def _authorized(self, method: str, path: str) -> bool:
                """True, or the refusal is answered (401 or 403) and logged."""
                refusal = admin.auth.check(method, self.headers.get("Authorization"))
                if refusal is None:
                    return True
                code, why = refusal
                peer = self.client_address[0]
                admin.refusals.note(time.monotonic(), f"{code} {method} {path} from {peer}: {why}")
                extra = {"WWW-Authenticate": 'Bearer realm="hagate-admin"'} if code == 401 else {}
                self._json(code, {"error": why}, extra)
                return False

            def _json(
                self, code: int, data: dict[str, Any], extra: dict[str, str] | None = None
            ) -> None:
                self._send(code, "application/json", json.dumps(data).encode(), extra)

            def _send(
                self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(code)
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

            def process_request(self, request: Any, client_address: Any) -> None:
                if not admin.slots.take(client_address[0]):
                    self.shutdown_request(request)  # full: close now, never queue unbounded
                    return
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    admin.slots.give(client_address[0])
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                # In the connection's own thread: a slow handshake holds only its own slot.
                try:
                    request.settimeout(READ_TIMEOUT)
                    if admin.tls is not None and _speaks_tls(request):
                        request = admin.tls.wrap_socket(request, server_side=True)
                    super().process_request_thread(request, client_address)
                except (OSError, ssl.SSLError):
                    self.shutdown_request(request)
                finally:
                    admin.slots.give(client_address[0])

        self.httpd = Server((host, port), Handler)
        self.httpd.timeout = 5
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="hagate-admin", daemon=True
        )

    # -- the console's views -------------------------------------------------------------

    def _in_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the gateway's event loop and wait (at most LOOP_TIMEOUT)."""
        gw = self.gateway
        assert gw is not None and gw.loop is not None
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except Exception as exc:
                    fut.set_exception(exc)

        gw.loop.call_soon_threadsafe(run)
        return fut.result(LOOP_TIMEOUT)

    def _records(self) -> tuple[list[DeviceRecord], float, dict[str, dict[str, Any]]]:
        """The book refreshed, the wall clock, and the live bans (as JSON, by device)."""
        gw = self.gateway
        assert gw is not None and gw.loop is not None
        loop = gw.loop
        now = time.time()

        def read() -> tuple[list[DeviceRecord], dict[str, dict[str, Any]]]:
            t = loop.time()
            bans = {b.device: b.as_json(t, now) for b in gw.tunnel.bans.expire(t)}
            return self.book.refresh(gw, now), bans

        records, bans = self._in_loop(read)
        return records, now, bans

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        gw = self.gateway
        if gw is None or gw.loop is None:
            return 503, {"error": "no gateway behind this admin listener"}
        node = gw.cfg.node
        try:
            if path == "/api/summary":
                records, now, bans = self._records()
                return 200, {
                    "node": node,
                    "now": round(now, 3),
                    "known": len(records),
                    "online": sum(1 for r in records if r.online),
                    "streams": sum(r.streams for r in records),
                    "banned": len(bans),
                    "device_changes": self.book.changes,
                    "access_seen": self.book.access_seen,
                    "health": gw.health(),
                }
            if path == "/api/devices":
                dq = DeviceQuery.parse(query)
                records, now, bans = self._records()
                page = dq.page(records, node, now)
                for row in page["devices"]:
                    row["banned"] = bans.get(row["name"])
                return 200, page
            if path == "/api/bans":
                _, now, bans = self._records()
                rows = list(bans.values())
                return 200, {"node": node, "now": round(now, 3), "bans": rows[:MAX_LIMIT]}
            if path == "/api/access":
                entries: list[AccessEntry] = self._in_loop(lambda: list(gw.access.recent))
                return 200, {"node": node, "entries": access_page(entries, query)}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except concurrent.futures.TimeoutError:
            return 503, {"error": f"the gateway's loop did not answer within {LOOP_TIMEOUT} s"}
        return 404, {"error": "unknown path: see docs/console.md"}

    def post(
        self, path: str, body: dict[str, Any], query: dict[str, list[str]] | None = None
    ) -> tuple[int, dict[str, Any]]:
        gw = self.gateway
        if gw is None or gw.loop is None:
            return 503, {"error": "no gateway behind this admin listener"}
        loop = gw.loop
        parts = path.split("/")
        if len(parts) != 5 or parts[:3] != ["", "api", "devices"] or parts[4] not in _ACTIONS:
            return 404, {"error": "unknown path: see docs/console.md"}
        device, action = unquote(parts[3]), parts[4]
        by = str(body.get("by") or "admin")[:120]
        try:
            ban_s = ban_seconds(body, query or {})
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if action == "unban":
            try:
                lifted = self._in_loop(lambda: gw.tunnel.bans.lift(device))
            except concurrent.futures.TimeoutError:
                return 503, {"error": f"the gateway's loop did not answer within {LOOP_TIMEOUT} s"}
            if lifted:
                log.warning("admin: device %s unbanned by %s", device, by)
            return 200, {"node": gw.cfg.node, "device": device, "unbanned": lifted}

        def kick() -> tuple[bool, dict[str, Any] | None]:
            banned = None
            if ban_s is not None:
                ban = gw.tunnel.bans.ban(device, ban_s, by, loop.time())
                banned = ban.as_json(loop.time(), time.time())
            session = gw.sessions.get(device)
            if session is None:
                return False, banned
            why = f"session closed by {by}" + (f", banned for {ban_s} s" if ban_s else "")
            gw.end_session(session, error=why)
            self.book.note_error(device, why.replace("session closed", "kicked"), time.time())
            return True, banned

        try:
            kicked, banned = self._in_loop(kick)
        except concurrent.futures.TimeoutError:
            return 503, {"error": f"the gateway's loop did not answer within {LOOP_TIMEOUT} s"}
        if banned is not None:
            log.warning("admin: device %s banned for %d s by %s", device, ban_s, by)
        if not kicked and banned is None:
            return 404, {"error": f"device {device} has no session on {gw.cfg.node}"}
        return 200, {"node": gw.cfg.node, "device": device, "kicked": kicked, "banned": banned}

    def start(self) -> None:
        for level, line in start_notes(self.address, self.auth.token is not None, self.insecure):
            log.log(level, "%s", line)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
