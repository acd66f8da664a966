"""Tunnel benchmark: hagate vs OpenSSH `ssh -R` vs direct loopback, in one run.

    python bench/tunnel.py            # full: iperf3, wrk, nginx, sshd (apt-installed if missing)
    python bench/tunnel.py --quick    # ~20 s smoke run: ours vs direct, built-in tiny servers

Everything runs on 127.0.0.1. The gateway and the agents run as separate processes, as they
are deployed (`hagate gateway -c`, `hagate agent -c`); the user reaches the device's service
through the gateway's TCP port (bulk) or its HTTP(S) route by Host name (HTTP). The OpenSSH
baseline is a private sshd on 127.0.0.1 (its own config and keys, /run on a private tmpfs in
an `unshare --mount` namespace) and `ssh -N -R` from the "device" side.

The HTTP keep-alive rows measure hagate and `ssh -R` interleaved (A B B A, each half the
time), so that a shared machine's changing load falls on both alike, and give each side's
CPU per request: the gateway's and the agent's, against sshd's (with its session children)
and the ssh client's, which play the same parts. `--only http` runs just those rows.

Besides the main table, the same run measures what authentication costs (issue 10: HTTP basic
auth on the http route, a user certificate on the https route, each against the same route
without credentials), a keep-alive connection that alternates between two devices' Hosts
(issue 11: every answer must come from the device its Host names), and prints the issues'
targets with PASS/MISS. The gateway is a black box here: only its ports are used. Its rate
and stream limits are raised in the bench's gateway.toml, since one loopback address stands
for many users here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DOMAIN = "gw.bench"
HTTP_BODY = b"hello, world\n"
DEV2_BODY = b"hello, dev2!\n"  # dev2's web service: tells its answers from dev1's


def http_response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


HTTP_RESPONSE = http_response(HTTP_BODY)
PARTS = ("bulk", "http", "auth", "mixed", "idle")  # what --only can pick
APT_PACKAGES = ["openssh-server", "openssh-client", "iperf3", "wrk", "nginx-light"]


# --------------------------------------------------------------------------- utilities


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and of every process below it (sshd forks one per session)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid)
        todo += children.get(pid, [])
    return total


def metric(admin_port: int, name: str) -> float:
    """A value from the gateway's /metrics (-1 if it does not answer within 5 s)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# The benchmark's access policy: the devices' `http` services and the inventory port are open
# (no authentication); dev1's `auth` service (the same web server) needs a password or the
# user certificate `alice`, so "with auth" and "without" differ only in the credential check.
BENCH_USER, BENCH_PASSWORD = "bench", "bench-password"
BENCH_POLICY = """
[passwords]
{user} = "{hash}"

[[rule]]
name = "open"
devices = ["*"]
services = ["http", "bulk", "web"]
routes = ["http", "https", "tcp"]
public = true

[[rule]]
name = "auth"
who = ["password:{user}", "user:alice"]
devices = ["dev1"]
services = ["auth"]
routes = ["http", "https"]
"""
BASIC_AUTH = "Basic " + base64.b64encode(f"{BENCH_USER}:{BENCH_PASSWORD}".encode()).decode()


class Procs:
    """Child processes, all killed at the end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p: subprocess.Popen[bytes] = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# ------------------------------------------------------------- built-in tiny servers


def serve_sink(port: int) -> None:
    """Count bytes of each connection; print 'bytes seconds' at its end (one per line)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    buf = bytearray(1 << 20)
    while True:
        conn, _ = ls.accept()
        total, t0, t1 = 0, 0.0, 0.0
        while n := conn.recv_into(buf):
            if not total:
                t0 = time.perf_counter()
            total += n
            t1 = time.perf_counter()
        conn.close()
        if total:  # not a port probe
            print(total, t1 - t0, flush=True)


def serve_http(port: int, body: bytes = HTTP_BODY) -> None:
    """A keep-alive HTTP/1.1 server answering every request with a fixed small body."""
    response = http_response(body)

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
                self.t.write(response * n)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def bulk_send(port: int, seconds: float) -> float:
    """Send for ``seconds``; returns the sender-side rate in Gbit/s."""
    s = socket.create_connection(("127.0.0.1", port))
    chunk = b"\0" * (1 << 20)
    total, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        total += s.send(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
    return total * 8 / (time.perf_counter() - t0) / 1e9


# ------------------------------------------------------------- the bench's HTTP client


@dataclass
class Load:
    """One load measurement: keep-alive connections, one request at a time on each."""

    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int = 0  # answers other than 200, connections closed under the client
    wrong: int = 0  # 200 answers with another device's body
    first_error: str = ""
    reconnects: int = 0  # connections the server closed with "Connection: close"
    answers: int = 0


@dataclass(frozen=True)
class Target:
    """What one request asks for: a Host, and the body its device answers with."""

    host: str
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    used: int  # bytes of the buffer it took
    close: bool  # "Connection: close": the server ends the connection after it


def combine(x: Load, y: Load) -> Load:
    """Two halves of one measurement of equal length."""
    return Load(
        (x.rps + y.rps) / 2,
        (x.p50 + y.p50) / 2,
        (x.p99 + y.p99) / 2,
        x.errors + y.errors,
        x.wrong + y.wrong,
        x.first_error or y.first_error,
        x.reconnects + y.reconnects,
        x.answers + y.answers,
    )


def parse_response(buf: bytes | bytearray) -> Response | None:
    """The first whole response in ``buf``; None while incomplete.

    Content-Length and chunked bodies, so that whatever framing the gateway chooses works.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[0]!r}")
    status = int(parts[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    start = end + 4
    close = "close" in fields.get("connection", "").lower()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        pos = start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                trailer = buf.find(b"\r\n\r\n", eol)
                if trailer < 0:
                    return None
                return Response(status, bytes(body), trailer + 4, close)
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2
    length = int(fields.get("content-length", "0"))
    if len(buf) < start + length:
        return None
    return Response(status, bytes(buf[start : start + length]), start + length, close)


def request_bytes(host: str, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def client_tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A browser-like TLS client: verifies the gateway; presents ``cert`` when given one."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


@dataclass
class _Tally:
    """What the connections of one measurement saw."""

    targets: tuple[Target, ...]
    t_end: float
    lat: list[float] = field(default_factory=list)
    errors: int = 0
    wrong: int = 0
    reconnects: int = 0
    first_error: str = ""

    def answer(self, target: Target, status: int, body: bytes, dt: float) -> None:
        if status != 200:
            self.error(f"{status} from {target.host}")
        elif body != target.body:
            self.wrong += 1
        self.lat.append(dt)

    def error(self, what: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or what

    def result(self, seconds: float) -> Load:
        if len(self.lat) < 2:
            raise RuntimeError(f"fewer than 2 answers in {seconds:.1f} s ({self.first_error})")
        q = statistics.quantiles(self.lat, n=100)
        return Load(
            len(self.lat) / seconds,
            q[49] * 1000,
            q[98] * 1000,
            self.errors,
            self.wrong,
            self.first_error,
            self.reconnects,
            len(self.lat),
        )


MAX_ERRORS = 1000  # a measurement that keeps failing stops rather than spin


def py_load(
    port: int,
    targets: tuple[Target, ...],
    conns: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Load:
    """``conns`` keep-alive connections; each cycles through ``targets``, one request at a time.

    Each answer is checked (status 200, the body of the device its Host names). One connection
    runs on a blocking socket (the client's own latency stays small); more on asyncio.
    """
    reqs = [request_bytes(t.host, headers or {}) for t in targets]
    if conns == 1:
        return _sync_load(port, targets, reqs, seconds, tls)
    return asyncio.run(_async_load(port, targets, reqs, conns, seconds, tls))


def _sync_load(
    port: int,
    targets: tuple[Target, ...],
    reqs: list[bytes],
    seconds: float,
    tls: ssl.SSLContext | None,
) -> Load:
    def connect() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return tls.wrap_socket(s, server_hostname=targets[0].host) if tls else s

    tally = _Tally(targets, time.perf_counter() + seconds)
    s = connect()
    i = 0
    while (t0 := time.perf_counter()) < tally.t_end and tally.errors < MAX_ERRORS:
        k = i % len(targets)
        i += 1
        buf = b""
        try:
            s.sendall(reqs[k])
            while (got := parse_response(buf)) is None:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError(f"connection closed after {len(buf)} bytes")
                buf += data
        except (OSError, ValueError) as exc:
            tally.error(f"{targets[k].host}: {exc}")
            s.close()
            s = connect()
            continue
        tally.answer(targets[k], got.status, got.body, time.perf_counter() - t0)
        if got.close:  # the server said so: a new connection, as a browser would
            tally.reconnects += 1
            s.close()
            s = connect()
    s.close()
    return tally.result(seconds)


class _LoadConn(asyncio.Protocol):
    """One keep-alive connection of an asyncio measurement."""

    def __init__(self, tally: _Tally, reqs: list[bytes], first: int) -> None:
        self.tally, self.reqs, self.i = tally, reqs, first
        self.buf = bytearray()
        self.k = 0
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None
        self.announced_close = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.tally.t_end or self.tally.errors >= MAX_ERRORS:
            self.transport.close()
            return
        self.k = self.i % len(self.reqs)
        self.i += 1
        self.t0 = time.perf_counter()
        self.transport.write(self.reqs[self.k])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            got = parse_response(self.buf)
        except ValueError as exc:
            self.tally.error(str(exc))
            assert self.transport is not None
            self.transport.abort()
            return
        if got is None:
            return
        del self.buf[: got.used]
        self.tally.answer(
            self.tally.targets[self.k], got.status, got.body, time.perf_counter() - self.t0
        )
        if got.close:  # the server said so; _async_load dials again
            self.announced_close = True
            self.tally.reconnects += 1
            assert self.transport is not None
            self.transport.close()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.tally.t_end and not self.announced_close:
            self.tally.error(f"connection closed early ({exc or 'EOF'})")
        if not self.closed.done():
            self.closed.set_result(None)


async def _async_load(
    port: int,
    targets: tuple[Target, ...],
    reqs: list[bytes],
    conns: int,
    seconds: float,
    tls: ssl.SSLContext | None,
) -> Load:
    loop = asyncio.get_running_loop()
    tally = _Tally(targets, 0.0)
    made: list[_LoadConn] = []
    for c in range(conns):  # connect all first: the clock starts when every one is up
        _, proto = await loop.create_connection(
            lambda c=c: _LoadConn(tally, reqs, c),
            "127.0.0.1",
            port,
            ssl=tls,
            server_hostname=targets[0].host if tls else None,
        )
        made.append(proto)
    tally.t_end = time.perf_counter() + seconds
    for proto in made:
        proto.send()
    while time.perf_counter() < tally.t_end and tally.errors < MAX_ERRORS:
        lost = [p for p in made if p.closed.done()]
        for p in lost:  # the gateway closed one: dial again, as a browser would
            made.remove(p)
            _, proto = await loop.create_connection(
                lambda p=p: _LoadConn(tally, reqs, p.i),
                "127.0.0.1",
                port,
                ssl=tls,
                server_hostname=targets[0].host if tls else None,
            )
            made.append(proto)
            proto.send()
        await asyncio.sleep(0.05)
    await asyncio.wait([p.closed for p in made], timeout=5.0)
    for p in made:
        if p.transport is not None:
            p.transport.abort()
    return tally.result(seconds)


def probe(
    port: int, target: Target, headers: dict[str, str] | None, tls: ssl.SSLContext | None
) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if tls:
            s = tls.wrap_socket(s, server_hostname=target.host)
        s.sendall(request_bytes(target.host, headers or {}))
        buf = b""
        while (got := parse_response(buf)) is None:
            data = s.recv(65536)
            if not data:
                raise ConnectionError(f"closed after {buf[:80]!r}")
            buf += data
        return got.status, got.body
    finally:
        s.close()


def wait_answer(
    port: int,
    target: Target,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    timeout: float = 15.0,
) -> str:
    """Retry until ``target`` answers 200 with its body: "" then, else why not."""
    t_end = time.monotonic() + timeout
    why = ""
    while time.monotonic() < t_end:
        try:
            status, body = probe(port, target, headers, tls)
        except (OSError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and body == target.body:
                return ""
            why = f"{status} {body[:60]!r}"
        time.sleep(0.1)
    return f"{target.host} did not answer 200 with its page within {timeout:.0f} s: {why}"


# ----------------------------------------------------------------- hagate set-up


@dataclass
class Hagate:
    work: Path
    tunnel: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    https: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)
    tcp: int = field(default_factory=free_port)
    # dev1's web server as a raw TCP service: HTTP through two pipes, no HTTP work on the
    # way (the floor of one TLS data connection per stream, Python on each hop)
    tcp_web: int = field(default_factory=free_port)
    gw_pid: int = 0
    agent_pid: int = 0  # dev1's agent
    pool: int = 1

    @property
    def pki(self) -> Path:
        return self.work / "pki"

    def make_pki(self, devices: int) -> None:
        from hagate.pki.ca import Role, init_ca, issue

        init_ca(self.pki)
        issue(self.pki, Role.SERVER, "gw", dns=[DOMAIN, f"*.{DOMAIN}"], ips=["127.0.0.1"])
        issue(self.pki, Role.DEVICE, "dev1")
        issue(self.pki, Role.DEVICE, "dev2")
        issue(self.pki, Role.USER, "alice")
        for i in range(devices):
            issue(self.pki, Role.DEVICE, f"idle{i}", days=2)

    def user_tls(self, with_cert: bool) -> ssl.SSLContext:
        """A browser's TLS context for the https route, holding alice's certificate or none."""
        alice = self.pki / "issued" / "user" / "alice"
        if with_cert:
            return client_tls(self.pki / "ca.crt", alice / "cert.pem", alice / "key.pem")
        return client_tls(self.pki / "ca.crt")

    def write_configs(self, sink: int, web: int, web2: int) -> None:
        from hagate.policy.passwords import hash_password

        policy = BENCH_POLICY.format(user=BENCH_USER, hash=hash_password(BENCH_PASSWORD))
        (self.work / "policy.toml").write_text(policy)
        # The limits are raised: every bench client comes from 127.0.0.1 and stands for many
        # users; the defaults (200 requests/s per address, 32 streams) would measure the limits.
        (self.work / "gateway.toml").write_text(
            f"""domain = "{DOMAIN}"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/server/gw/cert.pem"
key = "pki/issued/server/gw/key.pem"
crl = "pki/crl.pem"
[listen]
tunnel = "127.0.0.1:{self.tunnel}"
http = "127.0.0.1:{self.http}"
https = "127.0.0.1:{self.https}"
admin = "127.0.0.1:{self.admin}"
[tcp]
listen = "127.0.0.1"
[tcp.pinned]
"dev1/bulk" = {self.tcp}
"dev1/web" = {self.tcp_web}
[policy]
file = "policy.toml"
[limits]
pool = {self.pool}
requests_per_s = 1000000.0
streams_per_device = 4096
streams_per_principal = 4096
"""
        )
        agent = """gateway = "127.0.0.1:{tunnel}"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/device/{name}/cert.pem"
key = "pki/issued/device/{name}/key.pem"
[[service]]
name = "http"
type = "http"
target = "127.0.0.1:{web}"
"""
        (self.work / "agent.toml").write_text(
            agent.format(tunnel=self.tunnel, name="dev1", web=web)
            + f"""[[service]]
name = "auth"
type = "http"
target = "127.0.0.1:{web}"
[[service]]
name = "bulk"
type = "tcp"
target = "127.0.0.1:{sink}"
[[service]]
name = "web"
type = "tcp"
target = "127.0.0.1:{web}"
"""
        )
        (self.work / "agent2.toml").write_text(
            agent.format(tunnel=self.tunnel, name="dev2", web=web2)
        )

    def start(self, procs: Procs) -> None:
        hagate = [sys.executable, "-m", "hagate"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        log = (self.work / "gateway.log").open("wb")
        gw = procs.start(
            [*hagate, "gateway", "-c", "gateway.toml"], cwd=self.work, env=env, stderr=log
        )
        self.gw_pid = gw.pid
        wait_port(self.admin)
        for conf in ("agent.toml", "agent2.toml"):
            agent = procs.start([*hagate, "agent", "-c", conf], cwd=self.work, env=env)
            self.agent_pid = self.agent_pid or agent.pid
        wait_port(self.tcp)
        wait_port(self.tcp_web)
        for target in (Target(f"dev1.{DOMAIN}", HTTP_BODY), Target(f"dev2.{DOMAIN}", DEV2_BODY)):
            if why := wait_answer(self.http, target):
                raise RuntimeError(why)


def agents_worker(start: int, count: int, port: int, pki: str) -> None:
    """Run ``count`` idle agents (idle<start>...) in this process until killed."""
    from hagate.agent.agent import Agent
    from hagate.agent.config import AgentConfig, ClientConfig, LocalService
    from hagate.gateway.protocol import ServiceKind, ServiceSpec
    from hagate.gateway.server import raise_nofile_limit
    from hagate.net.tls import client_context

    raise_nofile_limit()
    if os.environ.get("HAGATE_BENCH_AGENT_LOG"):  # why agents lose sessions, when debugging
        import logging

        logging.basicConfig(
            level=logging.INFO,
            filename=f"{os.environ['HAGATE_BENCH_AGENT_LOG']}.{start}",
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    root = Path(pki)
    svc = [LocalService(ServiceSpec("http", ServiceKind.HTTP, None, 9), "127.0.0.1", 9)]

    async def main() -> None:
        tasks = []
        for i in range(start, start + count):  # a ramp, not a SYN flood
            b = root / "issued" / "device" / f"idle{i}"
            client = ClientConfig(
                "127.0.0.1", port, "127.0.0.1", root / "ca.crt", b / "cert.pem", b / "key.pem"
            )
            ctx = client_context(client.cert, client.key, client.ca)
            tasks.append(asyncio.create_task(Agent(AgentConfig(client, svc), ctx).run()))
            await asyncio.sleep(0.004)
        await asyncio.Event().wait()

    asyncio.run(main())


# ------------------------------------------------------------------- OpenSSH set-up


def ensure_tools() -> None:
    missing = [
        t for t in ("/usr/sbin/sshd", "iperf3", "wrk", "/usr/sbin/nginx") if not shutil.which(t)
    ]
    if not missing:
        return
    print(
        f"bench/tunnel: {', '.join(missing)} missing; installing {' '.join(APT_PACKAGES)} "
        "with apt-get (services are kept from starting)",
        file=sys.stderr,
    )
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:  # keep the packages' init scripts from starting sshd/nginx on the host
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *APT_PACKAGES], check=True, env=env)
    finally:
        if created:
            policy.unlink()


def start_sshd(work: Path, procs: Procs) -> tuple[int, Path]:
    d = work / "ssh"
    d.mkdir()
    for name in ("hostkey", "userkey"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "userkey.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"""ListenAddress 127.0.0.1:{port}
HostKey {d / "hostkey"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
LogLevel ERROR
"""
    )
    script = (
        f"mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && "
        f"exec /usr/sbin/sshd -D -e -f {d / 'sshd_config'}"
    )
    procs.start(["unshare", "--mount", "sh", "-c", script])
    wait_port(port)
    return port, d / "userkey"


def start_ssh_tunnel(
    procs: Procs, sshd: int, key: Path, forwards: list[tuple[int, int]], cipher: str | None
) -> None:
    argv = [
        "ssh",
        "-N",
        "-p",
        str(sshd),
        "-i",
        str(key),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
    ]
    if cipher:
        argv += ["-c", cipher]
    for remote, local in forwards:
        argv += ["-R", f"127.0.0.1:{remote}:127.0.0.1:{local}"]
    procs.start([*argv, "root@127.0.0.1"])
    for remote, _ in forwards:
        wait_port(remote)


def start_nginx(work: Path, procs: Procs) -> tuple[int, int]:
    """nginx with dev1's page and, on a second port, dev2's: (port, port2)."""
    port, port2 = free_port(), free_port()
    d = work / "nginx"
    d.mkdir()
    temps = "\n".join(
        f"    {k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )

    def server(p: int, body: bytes) -> str:
        text = body.decode().replace("\n", "\\n")
        return f"""    server {{
        listen 127.0.0.1:{p};
        location / {{ return 200 "{text}"; }}
    }}
"""

    (d / "nginx.conf").write_text(
        f"""worker_processes 1;
daemon off;
pid {d / "nginx.pid"};
error_log {d / "error.log"};
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temps}
{server(port, HTTP_BODY)}{server(port2, DEV2_BODY)}}}
"""
    )
    procs.start(
        ["/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
    )
    wait_port(port)
    wait_port(port2)
    return port, port2


def iperf(port: int, seconds: float) -> float:
    """iperf3 client through ``port``: received Gbit/s (retried while the server is busy)."""
    for _ in range(5):
        out = subprocess.run(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 30,
        )
        result = json.loads(out.stdout or "{}")
        if "end" in result and "sum_received" in result["end"]:
            return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9
        time.sleep(1.0)
    raise RuntimeError(f"iperf3 via port {port} failed: {result.get('error', out.stderr)}")


def wrk(
    port: int, host: str, conns: int, seconds: float, headers: dict[str, str] | None = None
) -> Load:
    """wrk, one thread: req/s, p50/p99 and its count of non-2xx answers and socket errors."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(1.0, seconds):.0f}s", "--latency"]
    for k, v in {"Host": host, **(headers or {})}.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    first = ""
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
        first = f"{m.group(1)} non-2xx answers"
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
        first = first or m.group(0)
    m = re.search(r"(\d+) requests in", out)
    return Load(rps, ms("50"), ms("99"), errors, 0, first, 0, int(m.group(1)) if m else 0)


# ----------------------------------------------------------------------- tables


@dataclass
class Row:
    metric: str
    unit: str
    direct: float | None
    hagate: float | None
    ssh: float | None = None
    ssh_aes: float | None = None
    higher_is_better: bool = True


@dataclass
class Pair:
    """One measurement against its baseline through the gateway, taken back to back."""

    metric: str
    tool: str
    base: Load | None = None
    test: Load | None = None
    why_not: str = ""  # why it was not measured

    @property
    def cost(self) -> float | None:
        """Per cent of the baseline's req/s lost (negative: faster)."""
        if self.base is None or self.test is None or not self.base.rps:
            return None
        return (1 - self.test.rps / self.base.rps) * 100


@dataclass
class Check:
    """One of the issues' targets: PASS, MISS, or None when this run cannot tell."""

    name: str
    want: str
    measured: str
    vs_ssh: str
    vs_direct: str
    ok: bool | None


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def of(load: Load | None, name: str) -> float | None:
    """A figure of a measurement that may not have been taken."""
    return None if load is None else float(getattr(load, name))


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def print_grid(lines: list[list[str]]) -> None:
    """Column 0 left-aligned, the others right-aligned, a rule under the head."""
    widths = [max(len(x[i]) for x in lines) for i in range(len(lines[0]))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_table(rows: list[Row], with_ssh: bool) -> None:
    head = ["metric", "direct", "hagate"]
    if with_ssh:
        head += ["ssh -R", "ssh aes128", "hagate/ssh"]
    head += ["hagate/direct"]
    lines = [head]
    for r in rows:
        line = [f"{r.metric} ({r.unit})", fmt(r.direct), fmt(r.hagate)]
        if with_ssh:
            line += [fmt(r.ssh), fmt(r.ssh_aes), ratio(r.hagate, r.ssh)]
        line += [ratio(r.hagate, r.direct)]
        lines.append(line)
    print_grid(lines)


def print_pairs(title: str, base: str, test: str, pairs: list[Pair], extra: str) -> None:
    """``extra``: "wrong" adds the wrong-device column (mixed Hosts)."""
    print()
    print(title)
    head = ["metric", "tool", f"req/s {base}", f"req/s {test}", "change"]
    head += [f"p50 {base}", f"p50 {test}", f"p99 {base}", f"p99 {test}"]
    head += (["wrong device"] if extra == "wrong" else []) + ["errors"]
    lines = [head]
    for p in pairs:
        b, t = p.base, p.test
        cost = p.cost
        line = [p.metric, p.tool, fmt(of(b, "rps")), fmt(of(t, "rps"))]
        line += ["-" if cost is None else f"{-cost:+.1f}%"]
        line += [fmt(of(b, "p50")), fmt(of(t, "p50")), fmt(of(b, "p99")), fmt(of(t, "p99"))]
        if extra == "wrong":
            line += [str(t.wrong) if t else "-"]
        line += [f"{b.errors}/{t.errors}" if b and t else "-"]
        lines.append(line)
    print_grid(lines)


def print_checks(checks: list[Check]) -> None:
    print()
    print("targets (issues 10 and 11)")
    lines = [["target", "want", "measured", "hagate/ssh", "hagate/direct", "verdict"]]
    for c in checks:
        verdict = "n/a" if c.ok is None else ("PASS" if c.ok else "MISS")
        lines.append([c.name, c.want, c.measured, c.vs_ssh, c.vs_direct, verdict])
    print_grid(lines)


# ----------------------------------------------------------------------- the run


def py(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


class Measure:
    """Runs the HTTP measurements of one run: wrk in the full run, else the bench's client.

    HTTPS with a client certificate and mixed Hosts always use the bench's client (wrk can
    present no certificate and cannot tell which request an answer belongs to); so does every
    baseline they are compared with.
    """

    def __init__(self, seconds: float, use_wrk: bool) -> None:
        self.seconds = seconds
        self.use_wrk = use_wrk

    def tool(self, tls: ssl.SSLContext | None, targets: tuple[Target, ...]) -> str:
        return "wrk" if self.use_wrk and tls is None and len(targets) == 1 else "bench"

    def load(
        self,
        port: int,
        targets: tuple[Target, ...],
        conns: int,
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        seconds: float | None = None,
        force_bench: bool = False,
    ) -> Load:
        seconds = seconds or self.seconds
        if self.tool(tls, targets) == "wrk" and not force_bench:
            return wrk(port, targets[0].host, conns, seconds, headers)
        return py_load(port, targets, conns, seconds, headers, tls)

    def abba(self, a: Callable[[float], Load], b: Callable[[float], Load]) -> tuple[Load, Load]:
        """A, B, B, A for half the time each: drift of a shared machine's load cancels out.

        Each result is the mean of its two halves (req/s; p50 and p99 too, approximately).
        """
        half = self.seconds / 2
        if self.use_wrk:
            half = float(max(1, math.ceil(half)))  # wrk takes whole seconds
        a1, b1 = a(half), b(half)
        b2, a2 = b(half), a(half)
        return combine(a1, a2), combine(b1, b2)

    def warm(self, port: int, target: Target, tls: ssl.SSLContext | None = None) -> None:
        """A short unmeasured load first, so that no row pays for pools still growing."""
        py_load(port, (target,), 32, min(1.0, self.seconds / 2), None, tls)


def auth_pair(
    m: Measure,
    metric: str,
    port: int,
    conns: int,
    open_target: Target,
    auth_target: Target,
    headers: dict[str, str] | None,
    tls_without: ssl.SSLContext | None = None,
    tls_with: ssl.SSLContext | None = None,
) -> Pair:
    """The public route without credentials, then the guarded one with them, back to back.

    First the guarded route is asked once without credentials (it must refuse: else the row
    would measure no authentication) and once with them (200, and the password is verified
    and cached before the clock starts, as after a browser's first request).
    """
    pair = Pair(metric, m.tool(tls_with, (auth_target,)))
    try:
        status, _ = probe(port, auth_target, None, tls_without)
        if status not in (401, 403):
            pair.why_not = f"{metric}: {auth_target.host} without credentials answered {status}"
            return pair
        if why := wait_answer(port, auth_target, headers, tls_with, timeout=5.0):
            pair.why_not = f"{metric}: with credentials, {why}"
            return pair
        pair.base, pair.test = m.abba(
            lambda t: m.load(port, (open_target,), conns, None, tls_without, t),
            lambda t: m.load(port, (auth_target,), conns, headers, tls_with, t),
        )
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        pair.why_not = f"{metric}: {type(exc).__name__}: {exc}"
    return pair


def mixed_pair(m: Measure, port: int, conns: int, dev1: Target, dev2: Target) -> Pair:
    """dev1 alone, then dev1 and dev2 alternating on each connection (each answer checked)."""
    pair = Pair(f"HTTP mixed Hosts {conns} conn", "bench")
    try:
        pair.base, pair.test = m.abba(  # the baseline with the same client as the test
            lambda t: m.load(port, (dev1,), conns, seconds=t, force_bench=True),
            lambda t: m.load(port, (dev1, dev2), conns, seconds=t),
        )
    except (OSError, RuntimeError, ValueError) as exc:
        pair.why_not = f"{pair.metric}: {type(exc).__name__}: {exc}"
    return pair


def cost_text(cost: float) -> str:
    return f"{cost:.1f}% slower" if cost >= 0 else f"{-cost:.1f}% faster"


def checks_for(rows: list[Row], auth: list[Pair], mixed: list[Pair], with_ssh: bool) -> list[Check]:
    """The issues' targets, from the rows and pairs of this run."""
    by = {r.metric: r for r in rows}
    out: list[Check] = []

    def row_after(metric: str, offset: int) -> Row | None:
        names = [r.metric for r in rows]
        return rows[names.index(metric) + offset] if metric in names else None

    for conns in (1, 32):
        r = by.get(f"HTTP keep-alive {conns} conn")
        if r is None:
            continue
        ok = r.hagate / r.ssh >= 1.5 if with_ssh and r.hagate and r.ssh else None
        out.append(
            Check(
                f"HTTP keep-alive {conns} conn req/s",
                ">= 1.5x ssh -R",
                f"{fmt(r.hagate)} req/s",
                ratio(r.hagate, r.ssh),
                ratio(r.hagate, r.direct),
                ok,
            )
        )
    p99 = row_after("HTTP keep-alive 1 conn", 2)
    if p99 is not None and p99.hagate is not None:
        out.append(
            Check(
                "HTTP keep-alive 1 conn p99",
                "< 2 ms",
                f"{fmt(p99.hagate)} ms",
                ratio(p99.hagate, p99.ssh),
                ratio(p99.hagate, p99.direct),
                p99.hagate < 2.0,
            )
        )
    bulk = by.get("bulk 1 stream user->device")
    if bulk is not None:
        ok = (
            bulk.hagate / bulk.ssh_aes >= 1.0 if with_ssh and bulk.hagate and bulk.ssh_aes else None
        )
        out.append(
            Check(
                "bulk 1 stream",
                ">= 1.0x ssh aes128-gcm",
                f"{fmt(bulk.hagate)} Gbit/s",
                ratio(bulk.hagate, bulk.ssh_aes),
                ratio(bulk.hagate, bulk.direct),
                ok,
            )
        )
    mem = by.get("gateway RSS per idle agent")
    if mem is not None and mem.hagate is not None:
        out.append(
            Check(
                "idle agent memory",
                "< 50 KiB",
                f"{fmt(mem.hagate)} KiB",
                ratio(mem.hagate, mem.ssh),
                "-",
                mem.hagate < 50,
            )
        )
    for p in auth:
        cost = p.cost
        clean = p.base is not None and p.test is not None and not p.base.errors + p.test.errors
        out.append(
            Check(
                f"{p.metric} cost",
                "< 10% of req/s",
                "not measured" if cost is None else cost_text(cost),
                "-",
                "-",
                cost is not None and cost < 10 and clean,
            )
        )
    for p in mixed:
        t = p.test
        out.append(
            Check(
                f"{p.metric}: wrong device",
                "0, no errors",
                "not measured" if t is None else f"{t.wrong} of {t.answers:,}",
                "-",
                "-",
                t is not None and t.wrong == 0 and t.errors == 0,
            )
        )
    return out


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    seconds = args.seconds or (2.0 if quick else 5.0)
    n_agents = args.agents if args.agents is not None else (200 if quick else 10_000)
    if unknown := parts - set(PARTS):
        print(f"bench/tunnel: --only: no part {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if "idle" not in parts:
        n_agents = 0
    if not quick:
        ensure_tools()
    procs = Procs()
    rows: list[Row] = []
    auth: list[Pair] = []
    mixed: list[Pair] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hagate-bench-") as tmp:
        work = Path(tmp)
        try:
            t0 = time.monotonic()
            h = Hagate(work)
            h.make_pki(n_agents)
            notes.append(
                f"PKI with {n_agents + 4} certificates made in {time.monotonic() - t0:.1f} s"
            )
            if quick:
                sink = free_port()
                sink_proc = procs.start(py("--serve-sink", str(sink)), stdout=subprocess.PIPE)
                web, web2 = free_port(), free_port()
                procs.start(py("--serve-http", str(web)))
                procs.start(py("--serve-http", str(web2), "--body", DEV2_BODY.decode()))
                for port in (sink, web, web2):
                    wait_port(port)
            else:
                sink = free_port()
                procs.start(["iperf3", "-s", "-p", str(sink)])
                wait_port(sink)
                web, web2 = start_nginx(work, procs)
            h.write_configs(sink, web, web2)
            h.start(procs)
            host = f"dev1.{DOMAIN}"
            dev1, dev2 = Target(host, HTTP_BODY), Target(f"dev2.{DOMAIN}", DEV2_BODY)
            guarded = Target(f"auth--dev1.{DOMAIN}", HTTP_BODY)
            m = Measure(seconds, use_wrk=not quick)

            # ---- bulk
            if quick:
                assert sink_proc.stdout is not None

                def bulk(port: int) -> float:
                    bulk_send(port, seconds)
                    n, dt = sink_proc.stdout.readline().split()  # type: ignore[union-attr]
                    return int(n) * 8 / float(dt) / 1e9

                if "bulk" in parts:
                    rows.append(
                        Row("bulk 1 stream user->device", "Gbit/s", bulk(sink), bulk(h.tcp))
                    )
            else:
                sshd, key = start_sshd(work, procs)
                sshd_pid = procs.procs[-1].pid  # sshd plays the gateway's part, ssh the agent's
                fwd_bulk, fwd_http = free_port(), free_port()
                fwd_bulk2, fwd_http2 = free_port(), free_port()
                start_ssh_tunnel(procs, sshd, key, [(fwd_bulk, sink), (fwd_http, web)], None)
                ssh_pid = procs.procs[-1].pid
                start_ssh_tunnel(
                    procs,
                    sshd,
                    key,
                    [(fwd_bulk2, sink), (fwd_http2, web)],
                    "aes128-gcm@openssh.com",
                )
                if "bulk" in parts:
                    rows.append(
                        Row(
                            "bulk 1 stream user->device",
                            "Gbit/s",
                            iperf(sink, seconds),
                            iperf(h.tcp, seconds),
                            iperf(fwd_bulk, seconds),
                            iperf(fwd_bulk2, seconds),
                        )
                    )

            # ---- HTTP
            for port in (web, h.http) if quick else (web, h.http, fwd_http, fwd_http2):
                m.warm(port, dev1)
            m.warm(h.https, dev1, h.user_tls(False))
            m.warm(h.tcp_web, dev1)
            for conns in (1, 32) if "http" in parts else ():
                d = m.load(web, (dev1,), conns)

                def cpu() -> tuple[float, float, float, float]:
                    """(gateway, agent, sshd, ssh) CPU seconds so far (ssh 0 in --quick)."""
                    if quick:
                        return cpu_seconds(h.gw_pid), cpu_seconds(h.agent_pid), 0.0, 0.0
                    ssh = tree_cpu(sshd_pid), cpu_seconds(ssh_pid)
                    return cpu_seconds(h.gw_pid), cpu_seconds(h.agent_pid), *ssh

                s = s2 = None
                cpu0 = cpu()
                if quick:
                    g = m.load(h.http, (dev1,), conns)
                else:  # hagate and ssh -R interleaved A B B A: the shared machine's drift cancels
                    g, s = m.abba(
                        lambda t, c=conns: m.load(h.http, (dev1,), c, seconds=t),
                        lambda t, c=conns: m.load(fwd_http, (dev1,), c, seconds=t),
                    )
                spent = [b - a for a, b in zip(cpu0, cpu(), strict=True)]
                ssh_cpu: list[float | None] = [None, None]
                if s is not None and s.answers:
                    ssh_cpu = [spent[2] / s.answers * 1e6, spent[3] / s.answers * 1e6]
                if not quick:
                    s2 = m.load(fwd_http2, (dev1,), conns)
                # The same requests through dev1's raw TCP route: a pipe on each hop and no
                # HTTP work, i.e. the most the HTTP front could reach on this path.
                floor = m.load(h.tcp_web, (dev1,), conns)
                rows.append(
                    Row(
                        f"HTTP keep-alive {conns} conn",
                        "req/s",
                        d.rps,
                        g.rps,
                        of(s, "rps"),
                        of(s2, "rps"),
                    )
                )
                rows.append(
                    Row("  latency p50", "ms", d.p50, g.p50, of(s, "p50"), of(s2, "p50"), False)
                )
                rows.append(
                    Row("  latency p99", "ms", d.p99, g.p99, of(s, "p99"), of(s2, "p99"), False)
                )
                if g.answers:  # where hagate's time goes: CPU (user + system) per request
                    per = [spent[0] / g.answers * 1e6, spent[1] / g.answers * 1e6]
                    rows.append(
                        Row(
                            "  gateway CPU per request", "us", None, per[0], ssh_cpu[0], None, False
                        )
                    )
                    rows.append(
                        Row("  agent CPU per request", "us", None, per[1], ssh_cpu[1], None, False)
                    )
                rows.append(Row("  same via raw TCP route", "req/s", None, floor.rps, of(s, "rps")))
                if g.errors:
                    notes.append(
                        f"HTTP keep-alive {conns} conn: {g.errors} errors ({g.first_error})"
                    )

            # ---- authentication (issue 10): public route vs the guarded one, same device
            basic = {"Authorization": BASIC_AUTH}
            no_cert, cert = h.user_tls(False), h.user_tls(True)
            for conns in (1, 32) if "auth" in parts else ():
                auth.append(
                    auth_pair(
                        m, f"http basic auth {conns} conn", h.http, conns, dev1, guarded, basic
                    )
                )
            for conns in (1, 32) if "auth" in parts else ():
                auth.append(
                    auth_pair(
                        m,
                        f"https client cert {conns} conn",
                        h.https,
                        conns,
                        dev1,
                        guarded,
                        None,
                        no_cert,
                        cert,
                    )
                )

            # ---- mixed Hosts on one connection (issue 11)
            for conns in (1, 32) if "mixed" in parts else ():
                mixed.append(mixed_pair(m, h.http, conns, dev1, dev2))

            # ---- idle agents
            if n_agents and "idle" in parts:
                rows += idle_agents(h, procs, n_agents, quick, notes)
        finally:
            procs.close()
    print(
        f"bench/tunnel {'--quick ' if quick else ''}({seconds:g} s per measurement, "
        "127.0.0.1, gateway and agents as separate processes)"
    )
    print_table(rows, with_ssh=not quick)
    print_pairs(
        "authentication (issue 10): the public route without credentials vs the guarded one "
        "with them",
        "open",
        "auth",
        auth,
        "",
    )
    print_pairs(
        "mixed Hosts (issue 11): dev1 alone vs dev1/dev2 alternating on each connection",
        "1 Host",
        "2 Hosts",
        mixed,
        "wrong",
    )
    print_checks(checks_for(rows, auth, mixed, with_ssh=not quick))
    for p in auth + mixed:
        if p.why_not:
            notes.append(f"not measured: {p.why_not}")
        for what, load in (("open", p.base), ("auth/mixed", p.test)):
            if load is not None and load.errors:
                notes.append(
                    f"{p.metric} ({what}): {load.errors} errors, first: {load.first_error}"
                )
    notes.append(
        "auth and mixed-Host pairs: 'change' is the second req/s against the first (negative = "
        "slower), each side the mean of two halves measured A B B A; 'cost' in the targets is "
        "that loss (the guarded route asks the policy for a password or certificate each request)"
    )
    notes.append(
        "'bench' = this script's client (one request at a time per keep-alive connection, each "
        "answer checked); it costs more CPU than wrk, so its req/s compare only with each other"
    )
    for n in notes:
        print(f"- {n}")
    if not quick:
        print("- ssh -R RSS per idle tunnel is the earlier measurement (sshd PSS +1.6-1.8 MB)")
    return 0


def idle_agents(h: Hagate, procs: Procs, n_agents: int, quick: bool, notes: list[str]) -> list[Row]:
    """Connect ``n_agents`` idle agents; the gateway's RSS per agent and its idle CPU."""
    workers = 1 if n_agents < 2000 else 2
    per = -(-n_agents // workers)
    base = rss_kb(h.gw_pid)
    t0 = time.monotonic()
    for w in range(workers):
        count = min(per, n_agents - w * per)
        if count > 0:
            procs.start(py("--agents-worker", str(w * per), str(count), str(h.tunnel), str(h.pki)))
    want = n_agents + 2  # and dev1, dev2
    slowest = 0.0
    while True:
        t_m = time.monotonic()
        got = metric(h.admin, "hagate_agents_connected")
        slowest = max(slowest, time.monotonic() - t_m)
        if got >= want:
            break
        print(
            f"  {got:.0f} of {want} agents connected after {time.monotonic() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if time.monotonic() - t0 > 120 + n_agents / 20:
            raise RuntimeError(f"only {got:.0f} of {want} agents connected")
        time.sleep(0.5 if quick else 2.0)
    up = time.monotonic() - t0
    time.sleep(0.5 if quick else 2.0)  # settle
    rss = rss_kb(h.gw_pid)
    c0, w0 = cpu_seconds(h.gw_pid), time.monotonic()
    time.sleep(1.0 if quick else 3.0)
    cpu = (cpu_seconds(h.gw_pid) - c0) / (time.monotonic() - w0) * 100
    per_agent = (rss - base) / n_agents
    notes.append(
        f"{n_agents:,} idle agents connected in {up:.1f} s; gateway RSS "
        f"{base / 1024:.1f} -> {rss / 1024:.1f} MiB = {per_agent:.1f} KiB per agent "
        f"(target < 50); gateway CPU with all idle (300 ms heartbeat): {cpu:.0f}%; "
        f"slowest /metrics answer while they connected: {slowest * 1000:.0f} ms"
    )
    return [
        Row("idle agents connected", "count", None, n_agents),
        Row(
            "gateway RSS per idle agent",
            "KiB",
            None,
            per_agent,
            1.7 * 1024 if not quick else None,
            None,
            False,
        ),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="ours vs direct, built-in servers, no apt")
    p.add_argument("--seconds", type=float, help="per measurement (2 quick, 5 full)")
    p.add_argument("--agents", type=int, help="idle agents (200 quick, 10000 full)")
    p.add_argument("--only", help=f"comma-separated parts to run, of {','.join(PARTS)} (all)")
    p.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    p.add_argument("--serve-http", type=int, help=argparse.SUPPRESS)
    p.add_argument("--body", default=HTTP_BODY.decode(), help=argparse.SUPPRESS)
    p.add_argument("--agents-worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up children on kill
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    if args.serve_http:
        serve_http(args.serve_http, args.body.encode())
        return 0
    if args.agents_worker:
        start, count, port, pki = args.agents_worker
        agents_worker(int(start), int(count), int(port), pki)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        return run(args)
    return 130


if __name__ == "__main__":
    sys.exit(main())
