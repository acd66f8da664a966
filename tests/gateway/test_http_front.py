"""The per-request HTTP front on a fake hub: socketpairs, devices that parse with h11.

Each device answers with what it received (as JSON), so a test sees exactly what the front
forwarded: which device got the request, its head fields, its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest

from hagate.gateway.http import HttpFront, UpstreamPool
from hagate.gateway.protocol import ServiceKind
from hagate.gateway.session import StreamError
from hagate.net.conn import Conn
from hagate.net.tls import Identity
from hagate.pki.ca import Role
from hagate.policy.model import (
    ANONYMOUS,
    AuthFailure,
    Decision,
    Principal,
    PrincipalKind,
    RouteKind,
)

DOMAIN = "gw.test"
CHALLENGE = 'Basic realm="hagate"'


# --------------------------------------------------------------------------- fake devices


@dataclass
class Device:
    """A device's web service: answers each request with JSON of what it got."""

    name: str
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    written: int = 0  # bytes of /big sent so far
    drop_after: int | None = None  # close a connection on its request number N (no answer)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def close_idle(self) -> None:
        """Close every connection (as a server's keep-alive timeout does)."""
        for w in self.writers:
            w.close()

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(w)
        leftover = b""
        served = 0
        try:
            while True:
                conn = h11.Connection(h11.SERVER)
                if leftover:  # (h11 reads b"" as end of stream)
                    conn.receive_data(leftover)
                req = await self._next(conn, r)
                if req is None:
                    return
                served += 1
                if self.drop_after is not None and served >= self.drop_after:
                    return
                keep = await self.respond(req, conn, r, w)
                leftover = conn.trailing_data[0]
                if not keep:
                    return
        except (ConnectionError, h11.ProtocolError):
            pass
        finally:
            w.close()

    async def _next(self, conn: h11.Connection, r: asyncio.StreamReader) -> h11.Request | None:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await r.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(ev, h11.Request):
                return ev
            if isinstance(ev, h11.ConnectionClosed):
                return None

    async def body(self, conn: h11.Connection, r: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await r.read(65536))
            elif isinstance(ev, h11.Data):
                parts.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise h11.RemoteProtocolError(f"unexpected {ev!r}")

    async def respond(
        self, req: h11.Request, conn: h11.Connection, r: asyncio.StreamReader, w: Any
    ) -> bool:
        path = req.target.decode()
        headers: dict[str, list[str]] = {}
        for name, value in req.headers:
            headers.setdefault(name.decode(), []).append(value.decode())
        if path == "/continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if path == "/slow-upload":
            await asyncio.sleep(0.4)
        if path == "/hang":
            await asyncio.sleep(3600)
        if path == "/ws":
            w.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\nhello-from-device"
            )
            rest, _ = conn.trailing_data
            if rest:
                w.write(rest.upper())
            while data := await r.read(65536):
                w.write(data.upper())
                await w.drain()
            return False
        if path == "/ws-refused":
            await self.body(conn, r)
            w.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno")
            return True
        body = await self.body(conn, r)
        info = {
            "device": self.name,
            "method": req.method.decode(),
            "path": path,
            "headers": headers,
            "body": len(body),
            "sha": hashlib.sha256(body).hexdigest(),
        }
        self.requests.append(info)
        payload = json.dumps(info).encode()
        if path == "/chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (payload[:10], payload[10:]):
                w.write(b"%x;ext=1\r\n%b\r\n" % (len(piece), piece))
            w.write(b"0\r\nX-Trailer: t\r\n\r\n")
            return True
        if path == "/eof":
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload)
            await w.drain()
            return False
        if path.startswith("/big"):
            n = int(path.split("=")[1])
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            chunk = b"x" * 65536
            while self.written < n:
                piece = chunk[: n - self.written]
                w.write(piece)
                self.written += len(piece)
                await w.drain()
            return True
        close = path == "/close"
        extra = b"Connection: close\r\n" if close else b""
        if req.method == b"HEAD":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n%b\r\n" % extra)
            return not close
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Keep-Alive: timeout=5\r\n%b\r\n%b" % (len(payload), extra, payload)
        )
        await w.drain()
        return not close


# --------------------------------------------------------------------------- fake hub


@dataclass
class FakeLease:
    device: str
    service: str
    principal: Principal
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    aborts: list[Callable[[], None]] = field(default_factory=list)
    ended: list[tuple[str, int | None]] = field(default_factory=list)

    def on_abort(self, callback: Callable[[], None]) -> None:
        self.aborts.append(callback)

    def end(self, result: str = "ok", status: int | None = None) -> None:
        self.ended.append((result, status))

    def cut(self) -> None:
        for cb in self.aborts:
            cb()


class FakePolicy:
    """Basic 'alice:secret' (a gateway credential); dev1 is public; dev2 needs alice;
    dev3 is refused to everyone (403)."""

    def authenticate(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure:
        if authorization == "Basic YWxpY2U6c2VjcmV0":
            return Principal(PrincipalKind.PASSWORD, "alice")
        if authorization == "Basic d3Jvbmc=":
            return AuthFailure(401, "wrong password", CHALLENGE)
        return ANONYMOUS

    def authenticate_cached(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure | None:
        if authorization == "Basic YWxpY2U6c2VjcmV0":
            return None  # the slow path: argon2 in a worker thread
        return self.authenticate(authorization, cert, now)

    def is_gateway_credential(self, authorization: str | None) -> bool:
        return authorization in ("Basic YWxpY2U6c2VjcmV0", "Basic d3Jvbmc=")

    def decide(
        self, principal: Principal, device: str, service: str, route: RouteKind, client_ip: str
    ) -> Decision:
        if device == "dev3":
            return Decision(False, "default deny", 403, f"no rule lets you reach {device}")
        if device == "dev2" and principal.kind is PrincipalKind.ANONYMOUS:
            return Decision(False, "default deny", 401, "needs credentials", CHALLENGE)
        return Decision(True, "test rule", 200, "ok")


class FakeHub:
    def __init__(self, devices: dict[str, Device]) -> None:
        self.devices = devices
        self.leases: list[FakeLease] = []
        self.opened = 0
        self.full: set[str] = set()
        self.refusals: list[tuple[str, int, str]] = []
        self.revoked: frozenset[int] = frozenset()
        self._policy = FakePolicy()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open_upstream(
        self, device: str, service: str | None, kind: ServiceKind | None
    ) -> Conn:
        dev = self.devices.get(device)
        if dev is None:
            raise StreamError(404, "offline", f"device {device} is not connected")
        self.opened += 1
        a, b = socket.socketpair()
        r, w = await asyncio.open_connection(sock=b)
        task = asyncio.create_task(dev.handle(r, w))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Conn(a)

    @property
    def policy(self) -> FakePolicy:
        return self._policy

    async def authenticate(
        self, policy: FakePolicy, authorization: str | None, cert: Identity | None, client_ip: str
    ) -> Principal | AuthFailure:
        found = policy.authenticate_cached(authorization, cert, time.time())
        if found is None:
            found = await asyncio.to_thread(policy.authenticate, authorization, cert, time.time())
        return found

    def service_name(self, device: str, service: str | None) -> str:
        return service or "http"

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
        self.refusals.append((device, status, reason))

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        via: str = "",
    ) -> FakeLease:
        if device in self.full:
            raise StreamError(429, "principal_limit", f"too many open streams to {device}")
        lease = FakeLease(device, service, principal)
        self.leases.append(lease)
        return lease

    def stop(self) -> None:
        for t in self._tasks:
            t.cancel()


# --------------------------------------------------------------------------- the rig


@dataclass
class Client:
    r: asyncio.StreamReader
    w: asyncio.StreamWriter

    def send(self, data: bytes) -> None:
        self.w.write(data)

    async def get(self, host: str, path: str = "/", extra: str = "") -> Response:
        self.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        return await read_response(self.r)

    async def closed(self, timeout: float = 2.0) -> bool:
        return await asyncio.wait_for(self.r.read(), timeout) == b""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.body)
        return out


async def read_response(r: asyncio.StreamReader, head_request: bool = False) -> Response:
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            assert k.lower() not in headers, f"duplicate {k} in {head!r}"
            headers[k.lower()] = v.strip()
    if head_request or status in (101, 204, 304) or 100 <= status < 200:
        return Response(status, headers, b"", head)
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                assert await r.readuntil(b"\r\n") == b"\r\n"
                break
            body += await r.readexactly(size)
            assert await r.readexactly(2) == b"\r\n"
    elif "content-length" in headers:
        body = await asyncio.wait_for(r.readexactly(int(headers["content-length"])), 10)
    else:
        body = await asyncio.wait_for(r.read(), 5)
    return Response(status, headers, body, head)


class Rig:
    def __init__(self, front: HttpFront, hub: FakeHub) -> None:
        self.front = front
        self.hub = hub
        self.serving: list[asyncio.Task[None]] = []

    def dev(self, name: str) -> Device:
        return self.hub.devices[name]

    async def client(
        self, ip: str = "192.0.2.7", sni: str | None = None, cert: Identity | None = None
    ) -> Client:
        a, b = socket.socketpair()
        task = asyncio.create_task(self.front.serve(Conn(a), (ip, 40000), sni, cert))
        self.serving.append(task)
        r, w = await asyncio.open_connection(sock=b)
        return Client(r, w)


@contextlib.asynccontextmanager
async def rig(**options: Any) -> AsyncIterator[Rig]:
    hub = FakeHub({n: Device(n) for n in ("dev1", "dev2", "dev3")})
    kind = options.pop("route_kind", RouteKind.HTTP)
    front = HttpFront(hub, kind, options.pop("port", 80), DOMAIN, **options)
    rig = Rig(front, hub)
    try:
        yield rig
    finally:
        front.close()
        for t in rig.serving:
            t.cancel()
        hub.stop()
        await asyncio.sleep(0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


# --------------------------------------------------------------------------- routing


def test_mixed_hosts_on_one_keep_alive_connection_reach_the_right_device() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            for dev in ("dev1", "dev2", "dev1", "dev2", "dev1"):
                auth = "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
                resp = await c.get(f"{dev}.{DOMAIN}", f"/from-{dev}", auth)
                assert resp.status == 200, resp
                assert resp.json()["device"] == dev
                assert resp.json()["path"] == f"/from-{dev}"
            assert g.dev("dev1").connections == 1  # one pooled upstream each, reused
            assert g.dev("dev2").connections == 1
            assert [lease.device for lease in g.hub.leases] == ["dev1", "dev2"] * 2 + ["dev1"]
            assert all(lease.ended[0][1] == 200 for lease in g.hub.leases)

    run(main)


def test_pipelined_requests_for_two_devices_answered_in_order() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(
                b"GET /a HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: dev2.gw.test\r\n"
                b"Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"
                b"POST /c HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 3\r\n\r\nabc"
                b"GET /d HTTP/1.1\r\nHost: svc--dev2.gw.test\r\nConnection: close\r\n"
                b"Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"
            )
            got = [(await read_response(c.r)).json() for _ in range(4)]
            assert [(j["device"], j["path"], j["body"]) for j in got] == [
                ("dev1", "/a", 0),
                ("dev2", "/b", 0),
                ("dev1", "/c", 3),
                ("dev2", "/d", 0),
            ]
            assert await c.closed()
            assert g.hub.leases[-1].service == "svc"

    run(main)


def test_pooled_upstream_reused_across_user_connections_and_expired() -> None:
    async def main() -> None:
        async with rig(pool=UpstreamPool(per_key=8, idle=0.2)) as g:
            for _ in range(3):
                c = await g.client()
                assert (await c.get("dev1.gw.test", extra="Connection: close\r\n")).status == 200
                assert await c.closed()
            assert g.dev("dev1").connections == 1
            assert g.front.pool.reused == 2
            await asyncio.sleep(0.5)  # idle past the pool's idle time: closed
            assert len(g.front.pool) == 0
            c = await g.client()
            assert (await c.get("dev1.gw.test")).status == 200
            assert g.dev("dev1").connections == 2
            g.front.drop_device("dev1")  # its session ended: the idle upstream goes too
            assert len(g.front.pool) == 0

    run(main)


def test_upstream_closed_while_idle_is_not_reused() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            assert (await c.get("dev1.gw.test")).status == 200
            g.dev("dev1").close_idle()  # the device closes its keep-alive connection
            for _ in range(20):
                await asyncio.sleep(0.005)  # the event loop sees the FIN of the idle upstream
            resp = await c.get("dev1.gw.test", "/fresh")
            assert resp.status == 200 and resp.json()["path"] == "/fresh"
            assert g.dev("dev1").connections == 2
            assert g.front.pool.reused == 0  # dropped as stale: no request went to a dead one

    run(main)


def test_idempotent_request_retried_once_when_a_reused_upstream_fails() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            assert (await c.get("dev1.gw.test")).status == 200
            g.dev("dev1").drop_after = 2  # the idle upstream dies as the next request lands
            resp = await c.get("dev1.gw.test", "/again")
            assert resp.status == 200 and resp.json()["path"] == "/again"
            assert g.dev("dev1").connections == 2
            # A POST is not retried: the user gets a clear 502, not a duplicate upload.
            c.send(b"POST /p HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 1\r\n\r\nx")
            assert (await read_response(c.r)).status == 502

    run(main)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("dev9.gw.test", 404),  # offline: the hub says so
        ("other.example.com", 404),
        ("gw.test", 404),
        ("a.b.gw.test", 404),
        ("dev1.gw.test:8080", 400),  # not the listener's port
        ("user@dev1.gw.test", 400),
        ("dev1.gw.test:80", 200),
        ("DEV1.GW.TEST.", 200),
        ("[::1]", 404),
        ("dev1.gw.test:x", 400),
        ("dev_1.gw.test", 400),
    ],
)
def test_host_rules(host: str, status: int) -> None:
    async def main() -> None:
        async with rig() as g:
            resp = await (await g.client()).get(host)
            assert resp.status == status, resp
            if status != 200:
                assert resp.headers["content-type"].startswith("text/plain")

    run(main)


def test_sni_must_match_host_on_https() -> None:
    async def main() -> None:
        async with rig(route_kind=RouteKind.HTTPS, port=443) as g:
            c = await g.client(sni="dev1.gw.test")
            ok = await c.get("dev1.gw.test")
            assert ok.status == 200
            assert ok.json()["headers"]["x-forwarded-proto"] == ["https"]
            assert (await c.get("dev2.gw.test")).status == 421
            c2 = await g.client(sni=None)  # no SNI: nothing to compare
            assert (await c2.get("dev1.gw.test")).status == 200

    run(main)


# --------------------------------------------------------------------------- smuggling


SMUGGLING = {
    "CL+TE": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE+CL": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 4\r\n\r\n0\r\n\r\n",
    "two CLs": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "two equal CLs": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 2\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "CL list": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 2, 2\r\n\r\nab",
    "CL sign": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: +2\r\n\r\nab",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX-A: a\r\n b\r\n\r\n",
    "obs-fold tab": b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX-A: a\r\n\tb\r\n\r\n",
    "bad chunk size": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "chunk too long": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    "TE not last chunked": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\n"
    b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "two TEs": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space before colon": b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\n"
    b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "duplicate Host": b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nHost: dev2.gw.test\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: dev1.gw.test\n\n",
    "lone CR": b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX: a\rb\r\n\r\n",
    "NUL": b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX: a\x00b\r\n\r\n",
    "absolute form, other host": b"GET http://dev2.gw.test/ HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_shapes_are_400_and_never_reach_a_device(name: str) -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(SMUGGLING[name])
            resp = await read_response(c.r)
            assert resp.status == 400, resp
            assert resp.headers["connection"] == "close"
            assert await c.closed()
            assert g.hub.opened == 0

    run(main)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/2.0\r\nHost: dev1.gw.test\r\n\r\n", 505),
        (b"CONNECT dev1.gw.test:80 HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n", 405),
        (
            b"POST / HTTP/1.1\r\nHost: dev1.gw.test\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"\r\n0\r\n\r\n",
            501,
        ),
    ],
)
def test_what_the_gateway_does_not_do_is_refused(request_bytes: bytes, status: int) -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(request_bytes)
            assert (await read_response(c.r)).status == status
            assert g.hub.opened == 0

    run(main)


def test_head_over_header_bytes_is_431() -> None:
    async def main() -> None:
        async with rig(header_bytes=1024) as g:
            c = await g.client()
            c.send(b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
            assert (await read_response(c.r)).status == 431
            # A head that never ends: refused without waiting for its end.
            c = await g.client()
            c.send(b"GET / HTTP/1.1\r\nHost: dev1.gw.test\r\nX-Big: ")
            for _ in range(200):
                c.send(b"a" * 1000)
            assert (await read_response(c.r)).status == 431
            assert g.hub.opened == 0

    run(main)


def test_slow_head_is_408_and_idle_keep_alive_closes_quietly() -> None:
    async def main() -> None:
        async with rig(head_timeout=0.2, idle_timeout=0.3) as g:
            c = await g.client()
            c.send(b"GET / HTTP/1.1\r\nHost: dev1")
            resp = await read_response(c.r)
            assert resp.status == 408
            c = await g.client()
            assert (await c.get("dev1.gw.test")).status == 200
            assert await c.closed(timeout=2.0)  # idle past idle_timeout: FIN, no 408

    run(main)


# --------------------------------------------------------------------------- access


def test_401_and_403_are_the_gateways_answers_never_the_devices_page() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            resp = await c.get("dev2.gw.test")
            assert resp.status == 401
            assert resp.headers["www-authenticate"] == CHALLENGE
            assert "connection" not in resp.headers  # a body-less request: keep going
            resp = await c.get("dev2.gw.test", extra="Authorization: Basic d3Jvbmc=\r\n")
            assert resp.status == 401 and resp.headers["www-authenticate"] == CHALLENGE
            resp = await c.get("dev3.gw.test")
            assert resp.status == 403
            assert resp.body.startswith(b"no rule lets")
            assert g.hub.opened == 0
            assert [(d, s) for d, s, _ in g.hub.refusals] == [("dev2", 401)] * 2 + [("dev3", 403)]
            ok = await c.get("dev2.gw.test", extra="Authorization: Basic YWxpY2U6c2VjcmV0\r\n")
            assert ok.status == 200
            assert "authorization" not in ok.json()["headers"]  # the gateway's credential
            assert g.hub.leases[0].principal.name == "alice"

    run(main)


class DenyDev1(FakePolicy):
    """A reloaded policy that closes dev1 to everyone."""

    def decide(
        self, principal: Principal, device: str, service: str, route: RouteKind, client_ip: str
    ) -> Decision:
        if device == "dev1":
            return Decision(False, "default deny", 403, "dev1 is closed now")
        return super().decide(principal, device, service, route, client_ip)


def test_each_request_of_a_keep_alive_connection_is_decided_and_leased() -> None:
    """The connection's memo of allowed decisions answers only while the policy is the same
    object; a reload is obeyed by the very next request, and every request still takes its
    own lease (limits hold, refusals are logged) however it was decided."""

    async def main() -> None:
        async with rig() as g:
            hub = g.hub
            c = await g.client()
            for _ in range(3):
                assert (await c.get("dev1.gw.test")).status == 200
            assert [lease.device for lease in hub.leases] == ["dev1"] * 3
            assert all(lease.ended == [("ok", 200)] for lease in hub.leases)
            hub._policy = DenyDev1()  # a reload: a new policy object
            resp = await c.get("dev1.gw.test")
            assert resp.status == 403 and resp.body.startswith(b"dev1 is closed")
            assert (await c.get("dev2.gw.test")).status == 401  # the new policy's answers
            hub._policy = FakePolicy()
            assert (await c.get("dev1.gw.test")).status == 200
            hub.full.add("dev1")  # the device's slots are taken: a remembered "allowed" is
            resp = await c.get("dev1.gw.test")  # no lease
            assert resp.status == 429 and "connection" not in resp.headers
            hub.full.discard("dev1")
            assert (await c.get("dev1.gw.test")).status == 200
            assert len(hub.leases) == 5
            assert [(d, st) for d, st, _ in hub.refusals] == [
                ("dev1", 403),
                ("dev2", 401),
                ("dev1", 429),
            ]
            creds = "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
            ok = await c.get("dev2.gw.test", extra=creds)  # credentials: decided each time
            assert ok.status == 200 and hub.leases[-1].principal.name == "alice"
            assert (await c.get("dev2.gw.test")).status == 401  # and none again: anonymous

    run(main)


class TokenPolicy(FakePolicy):
    """Bearer 'good' is bob's gateway token, known to the policy's cache until it expires."""

    def __init__(self) -> None:
        self.bob = Principal(PrincipalKind.TOKEN, "bob")
        self.valid = True
        self.asked = 0

    def authenticate_cached(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure | None:
        if authorization == "Bearer good":
            self.asked += 1
            return self.bob if self.valid else AuthFailure(401, "token expired", CHALLENGE)
        return super().authenticate_cached(authorization, cert, now)

    def is_gateway_credential(self, authorization: str | None) -> bool:
        return authorization == "Bearer good" or super().is_gateway_credential(authorization)


def test_a_remembered_credential_is_still_judged_by_the_policy_each_request() -> None:
    async def main() -> None:
        async with rig() as g:
            policy = g.hub._policy = TokenPolicy()
            c = await g.client()
            token = "Authorization: Bearer good\r\n"
            for _ in range(3):
                ok = await c.get("dev2.gw.test", extra=token)
                assert ok.status == 200 and "authorization" not in ok.json()["headers"]
            assert policy.asked == 3  # the credential was checked by the policy every time
            assert [lease.principal.name for lease in g.hub.leases] == ["bob"] * 3
            assert (await c.get("dev2.gw.test")).status == 401  # no credential: anonymous
            assert (await c.get("dev2.gw.test", extra=token)).status == 200
            policy.valid = False  # it expired: the next request with it is refused
            resp = await c.get("dev2.gw.test", extra=token)
            assert resp.status == 401 and resp.body.startswith(b"token expired")
            assert [st for _, st, _ in g.hub.refusals] == [401, 401]

    run(main)


def test_a_certificate_revoked_after_the_handshake_is_refused_on_its_next_request() -> None:
    """The CRL is the gateway's current one on every request, not the handshake's: a user
    certificate revoked meanwhile gets 403 on a keep-alive connection and on a new one."""

    async def main() -> None:
        async with rig(route_kind=RouteKind.HTTPS, port=443) as g:
            alice = Identity(Role.USER, "alice", 7)
            c = await g.client(sni="dev1.gw.test", cert=alice)
            for _ in range(2):
                assert (await c.get("dev1.gw.test")).status == 200
            g.hub.revoked = frozenset({7})
            resp = await c.get("dev1.gw.test")
            assert resp.status == 403 and resp.body.startswith(b"certificate revoked")
            c2 = await g.client(sni="dev1.gw.test", cert=alice)
            assert (await c2.get("dev1.gw.test")).status == 403
            bob = await g.client(sni="dev1.gw.test", cert=Identity(Role.USER, "bob", 8))
            assert (await bob.get("dev1.gw.test")).status == 200
            assert len(g.hub.leases) == 3
            assert [(d, st) for d, st, _ in g.hub.refusals] == [("dev1", 403)] * 2
            assert "user:alice revoked" in g.hub.refusals[0][2]

    run(main)


def test_pipelined_refusals_do_not_keep_the_event_loop() -> None:
    """Requests the gateway answers itself never wait on a device: a client that pipelines
    hundreds of them must still let the loop turn (others are served meanwhile)."""

    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            n = 320
            seen: list[int] = []
            done = False

            async def ticker() -> None:
                while not done:
                    seen.append(g.front.responses[404])
                    await asyncio.sleep(0)

            tick = asyncio.create_task(ticker())
            c.send(b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n" * n)
            for _ in range(n):
                assert (await read_response(c.r)).status == 404
            done = True
            await tick
            assert seen[-1] == n
            steps = [b - a for a, b in itertools.pairwise(seen)]
            assert max(steps) <= 64, max(steps)  # answered a few dozen per loop turn at most

    run(main)


def test_device_own_authorization_passes_through() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            resp = await c.get("dev1.gw.test", extra="Authorization: Basic ZGV2aWNlOnVp\r\n")
            assert resp.json()["headers"]["authorization"] == ["Basic ZGV2aWNlOnVp"]

    run(main)


def test_stream_limit_and_refused_upload_close_the_connection() -> None:
    async def main() -> None:
        async with rig() as g:
            g.hub.full.add("dev1")
            c = await g.client()
            assert (await c.get("dev1.gw.test")).status == 429
            c.send(b"POST / HTTP/1.1\r\nHost: dev3.gw.test\r\nContent-Length: 5\r\n\r\n")
            resp = await read_response(c.r)
            assert resp.status == 403 and resp.headers["connection"] == "close"
            assert await c.closed()

    run(main)


def test_revocation_cuts_a_request_in_flight() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(b"GET /hang HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n")
            while not g.hub.leases or not g.dev("dev1").connections:
                await asyncio.sleep(0.01)
            lease = g.hub.leases[0]
            lease.cut()
            assert await c.closed(timeout=1.0)
            await asyncio.sleep(0.05)
            assert lease.ended and lease.ended[0][0] == "aborted"

    run(main)


# --------------------------------------------------------------------------- proxy rules


def test_forwarded_fields_replaced_and_hop_by_hop_dropped() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client(ip="198.51.100.9")
            resp = await c.get(
                "dev1.gw.test",
                extra="X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
                "X-Real-IP: 6.6.6.6\r\nConnection: keep-alive, X-Secret, content-length\r\n"
                "X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\n"
                "Proxy-Authorization: Basic eA==\r\nX-Kept: yes\r\n",
            )
            got = resp.json()["headers"]
            assert got["x-forwarded-for"] == ["198.51.100.9"]
            assert got["x-forwarded-proto"] == ["http"]
            assert got["forwarded"] == ["for=198.51.100.9;proto=http"]
            assert got["x-kept"] == ["yes"]
            for name in ("x-real-ip", "connection", "x-secret", "keep-alive", "te"):
                assert name not in got
            assert "proxy-connection" not in got and "proxy-authorization" not in got
            assert "keep-alive" not in resp.headers  # the device's Keep-Alive: hop-by-hop
            c6 = await g.client(ip="2001:db8::1")
            got6 = (await c6.get("dev1.gw.test")).json()["headers"]
            assert got6["forwarded"] == ['for="[2001:db8::1]";proto=http']

    run(main)


def test_connection_close_and_http10_are_honoured() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            resp = await c.get("dev1.gw.test", extra="Connection: close\r\n")
            assert resp.headers["connection"] == "close"
            assert await c.closed()
            c = await g.client()
            c.send(b"GET /ten HTTP/1.0\r\nHost: dev1.gw.test\r\n\r\n")
            assert (await read_response(c.r)).headers["connection"] == "close"
            assert await c.closed()
            c = await g.client()
            for _ in range(2):
                c.send(b"GET / HTTP/1.0\r\nHost: dev1.gw.test\r\nConnection: keep-alive\r\n\r\n")
                resp = await read_response(c.r)
                assert resp.headers["connection"] == "keep-alive"
            # A chunked answer to an HTTP/1.0 client: de-chunked, ended by close.
            c.send(b"GET /chunked HTTP/1.0\r\nHost: dev1.gw.test\r\nConnection: keep-alive\r\n\r\n")
            resp = await read_response(c.r)
            assert resp.headers["connection"] == "close" and resp.json()["path"] == "/chunked"
            # The device closing after its answer does not close the user's connection.
            c = await g.client()
            assert (await c.get("dev1.gw.test", "/close")).status == 200
            assert (await c.get("dev1.gw.test", "/after")).json()["path"] == "/after"

    run(main)


def test_response_framings_chunked_eof_and_head() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            resp = await c.get("dev1.gw.test", "/chunked")
            assert resp.headers["transfer-encoding"] == "chunked"
            assert resp.json()["path"] == "/chunked"
            resp = await c.get("dev1.gw.test", "/eof")  # close-delimited: re-chunked for 1.1
            assert resp.headers["transfer-encoding"] == "chunked"
            assert resp.json()["path"] == "/eof"
            c.send(b"HEAD /h HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n")
            resp = await read_response(c.r, head_request=True)
            assert resp.headers["content-length"] == "1234"
            assert (await c.get("dev1.gw.test", "/next")).json()["path"] == "/next"
            assert g.dev("dev1").connections == 2  # the close-delimited one was not reused

    run(main)


def test_expect_100_continue() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(
                b"POST /continue HTTP/1.1\r\nHost: dev1.gw.test\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            interim = await read_response(c.r)
            assert interim.status == 100
            c.send(b"hello")
            resp = await read_response(c.r)
            assert resp.status == 200 and resp.json()["body"] == 5
            assert resp.json()["headers"]["expect"] == ["100-continue"]

    run(main)


# --------------------------------------------------------------------------- streaming


def test_chunked_upload_streams_with_backpressure() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(
                b"POST /slow-upload HTTP/1.1\r\nHost: dev1.gw.test\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            piece = b"u" * 65536
            digest = hashlib.sha256()
            sent = 0
            sock = c.w.get_extra_info("socket")
            t_end = asyncio.get_running_loop().time() + 0.25
            while asyncio.get_running_loop().time() < t_end:  # the device reads nothing yet
                c.send(b"%x\r\n%b\r\n" % (len(piece), piece))
                digest.update(piece)
                sent += len(piece)
                await asyncio.sleep(0)
                if c.w.transport.get_write_buffer_size() > 4 << 20:
                    break
            assert sock is not None
            # The front stopped reading: the bytes pile up on the client, not in the gateway.
            assert c.w.transport.get_write_buffer_size() > 1 << 20
            for _ in range(40):
                c.send(b"%x\r\n%b\r\n" % (len(piece), piece))
                digest.update(piece)
                sent += len(piece)
            c.send(b"0\r\n\r\n")
            resp = await read_response(c.r)
            assert resp.json()["body"] == sent
            assert resp.json()["sha"] == digest.hexdigest()
            assert resp.json()["headers"]["transfer-encoding"] == ["chunked"]

    run(main)


def test_long_download_is_held_back_by_a_slow_reader() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            total = 64 << 20
            c.send(b"GET /big=%d HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n" % total)
            await asyncio.sleep(0.3)  # the user reads nothing
            written = g.dev("dev1").written
            assert written < 8 << 20, written  # kernel buffers + HIGH_WATER, not 64 MiB
            head = await c.r.readuntil(b"\r\n\r\n")
            assert b"Content-Length: %d" % total in head
            got = 0
            while got < total:
                got += len(await c.r.read(1 << 20))
            assert got == total
            assert (await c.get("dev1.gw.test", "/after")).status == 200

    run(main)


def test_websocket_upgrade_becomes_a_raw_pipe() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(
                b"GET /ws HTTP/1.1\r\nHost: dev1.gw.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\nearly"
            )
            resp = await read_response(c.r)
            assert resp.status == 101
            assert resp.headers["upgrade"] == "websocket"
            assert resp.headers["connection"].lower() == "upgrade"
            assert await c.r.readexactly(17) == b"hello-from-device"
            assert await c.r.readexactly(5) == b"EARLY"
            c.send(b"ping")
            assert await c.r.readexactly(4) == b"PING"
            lease = g.hub.leases[0]
            assert not lease.ended  # held for the life of the pipe
            c.w.write_eof()
            assert await c.closed()
            await asyncio.sleep(0.05)
            assert lease.ended == [("upgraded", 101)]
            assert lease.bytes[0] > 0 and lease.bytes[1] > 0

    run(main)


def test_refused_upgrade_answers_and_closes() -> None:
    async def main() -> None:
        async with rig() as g:
            c = await g.client()
            c.send(
                b"GET /ws-refused HTTP/1.1\r\nHost: dev1.gw.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            assert (await read_response(c.r)).status == 426
            assert await c.closed()

    run(main)


def test_device_timeout_is_504_and_offline_is_404() -> None:
    async def main() -> None:
        async with rig(io_timeout=0.3) as g:
            c = await g.client()
            c.send(b"GET /hang HTTP/1.1\r\nHost: dev1.gw.test\r\n\r\n")
            assert (await read_response(c.r)).status == 504
            c = await g.client()
            assert (await c.get("nope.gw.test")).status == 404
            assert g.hub.leases[-1].ended[0][1] == 404

    run(main)
