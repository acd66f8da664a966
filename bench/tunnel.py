"""Tunnel benchmark: hagate vs OpenSSH `ssh -R` vs direct loopback, in one run.

    python bench/tunnel.py            # full: iperf3, wrk, nginx, sshd (apt-installed if missing)
    python bench/tunnel.py --quick    # ~20 s smoke run: ours vs direct, built-in tiny servers

Everything runs on 127.0.0.1. The gateway and the agent run as separate processes, as they
are deployed (`hagate gateway -c`, `hagate agent -c`); the user reaches the device's service
through the gateway's TCP port (bulk) or its HTTP route by Host name (HTTP). The OpenSSH
baseline is a private sshd on 127.0.0.1 (its own config and keys, /run on a private tmpfs in
an `unshare --mount` namespace) and `ssh -N -R` from the "device" side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DOMAIN = "gw.bench"
HTTP_BODY = b"hello, world\n"
HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(HTTP_BODY), HTTP_BODY)
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


# The benchmark's access policy: every web route and inventory port open (no authentication).
BENCH_POLICY = """
[[rule]]
name = "open"
devices = ["*"]
services = ["*"]
routes = ["http", "https", "tcp"]
public = true
"""


class Procs:
    """Child processes, all killed at the end whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
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


def serve_http(port: int) -> None:
    """A keep-alive HTTP/1.1 server answering every request with a fixed small body."""

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
                self.t.write(HTTP_RESPONSE * n)  # type: ignore[attr-defined]

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


def http_client(port: int, host: str, seconds: float) -> tuple[float, float, float]:
    """One keep-alive connection, one request at a time: (req/s, p50 ms, p99 ms)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    lat: list[float] = []
    t_end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < t_end:
        s.sendall(req)
        got = b""
        while len(got) < len(HTTP_RESPONSE):
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"connection closed after {got!r}")
            got += data
        lat.append(time.perf_counter() - t0)
    s.close()
    q = statistics.quantiles(lat, n=100)
    return len(lat) / seconds, q[49] * 1000, q[98] * 1000


# ----------------------------------------------------------------- hagate set-up


@dataclass
class Hagate:
    work: Path
    tunnel: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)
    tcp: int = field(default_factory=free_port)
    gw_pid: int = 0
    pool: int = 1

    def make_pki(self, devices: int) -> None:
        from hagate.pki.ca import Role, init_ca, issue

        pki = self.work / "pki"
        init_ca(pki)
        issue(pki, Role.SERVER, "gw", dns=[DOMAIN, f"*.{DOMAIN}"], ips=["127.0.0.1"])
        issue(pki, Role.DEVICE, "dev1")
        for i in range(devices):
            issue(pki, Role.DEVICE, f"idle{i}", days=2)

    def write_configs(self, sink: int, web: int) -> None:
        (self.work / "policy.toml").write_text(BENCH_POLICY)
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
admin = "127.0.0.1:{self.admin}"
[tcp]
listen = "127.0.0.1"
[tcp.pinned]
"dev1/bulk" = {self.tcp}
[policy]
file = "policy.toml"
[limits]
pool = {self.pool}
"""
        )
        (self.work / "agent.toml").write_text(
            f"""gateway = "127.0.0.1:{self.tunnel}"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/device/dev1/cert.pem"
key = "pki/issued/device/dev1/key.pem"
[[service]]
name = "http"
type = "http"
target = "127.0.0.1:{web}"
[[service]]
name = "bulk"
type = "tcp"
target = "127.0.0.1:{sink}"
"""
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
        procs.start([*hagate, "agent", "-c", "agent.toml"], cwd=self.work, env=env)
        wait_port(self.tcp)


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


def start_nginx(work: Path, procs: Procs) -> int:
    port = free_port()
    d = work / "nginx"
    d.mkdir()
    temps = "\n".join(
        f"    {k}_temp_path {d / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (d / "nginx.conf").write_text(
        f"""worker_processes 1;
daemon off;
pid {d / "nginx.pid"};
error_log {d / "error.log"};
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temps}
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "hello, world\\n"; }}
    }}
}}
"""
    )
    procs.start(
        ["/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
    )
    wait_port(port)
    return port


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


def wrk(port: int, host: str, conns: int, seconds: float) -> tuple[float, float, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-H",
            f"Host: {host}",
            f"http://127.0.0.1:{port}/",
        ],
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
    return rps, ms("50"), ms("99")


# ----------------------------------------------------------------------- the run


@dataclass
class Row:
    metric: str
    unit: str
    direct: float | None
    hagate: float | None
    ssh: float | None = None
    ssh_aes: float | None = None
    higher_is_better: bool = True


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


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
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def py(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    seconds = args.seconds or (2.0 if quick else 5.0)
    n_agents = args.agents if args.agents is not None else (200 if quick else 10_000)
    if not quick:
        ensure_tools()
    procs = Procs()
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hagate-bench-") as tmp:
        work = Path(tmp)
        try:
            t0 = time.monotonic()
            h = Hagate(work)
            h.make_pki(n_agents)
            notes.append(
                f"PKI with {n_agents + 2} certificates made in {time.monotonic() - t0:.1f} s"
            )
            if quick:
                sink = free_port()
                sink_proc = procs.start(py("--serve-sink", str(sink)), stdout=subprocess.PIPE)
                web = free_port()
                procs.start(py("--serve-http", str(web)))
                wait_port(sink)
                wait_port(web)
            else:
                sink = free_port()
                procs.start(["iperf3", "-s", "-p", str(sink)])
                wait_port(sink)
                web = start_nginx(work, procs)
            h.write_configs(sink, web)
            h.start(procs)
            host = f"dev1.{DOMAIN}"

            # ---- bulk
            if quick:
                assert sink_proc.stdout is not None

                def bulk(port: int) -> float:
                    bulk_send(port, seconds)
                    n, dt = sink_proc.stdout.readline().split()  # type: ignore[union-attr]
                    return int(n) * 8 / float(dt) / 1e9

                rows.append(Row("bulk 1 stream user->device", "Gbit/s", bulk(sink), bulk(h.tcp)))
            else:
                sshd, key = start_sshd(work, procs)
                fwd_bulk, fwd_http = free_port(), free_port()
                fwd_bulk2, fwd_http2 = free_port(), free_port()
                start_ssh_tunnel(procs, sshd, key, [(fwd_bulk, sink), (fwd_http, web)], None)
                start_ssh_tunnel(
                    procs,
                    sshd,
                    key,
                    [(fwd_bulk2, sink), (fwd_http2, web)],
                    "aes128-gcm@openssh.com",
                )
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
            if quick:
                d = http_client(web, host, seconds)
                g = http_client(h.http, host, seconds)
                rows.append(Row("HTTP keep-alive 1 conn", "req/s", d[0], g[0]))
                rows.append(Row("  latency p50", "ms", d[1], g[1], higher_is_better=False))
                rows.append(Row("  latency p99", "ms", d[2], g[2], higher_is_better=False))
            else:
                for conns in (1, 32):
                    d, g = wrk(web, host, conns, seconds), wrk(h.http, host, conns, seconds)
                    s, s2 = (
                        wrk(fwd_http, host, conns, seconds),
                        wrk(fwd_http2, host, conns, seconds),
                    )
                    rows.append(
                        Row(f"HTTP keep-alive {conns} conn", "req/s", d[0], g[0], s[0], s2[0])
                    )
                    rows.append(Row("  latency p50", "ms", d[1], g[1], s[1], s2[1], False))
                    rows.append(Row("  latency p99", "ms", d[2], g[2], s[2], s2[2], False))

            # ---- idle agents
            if n_agents:
                workers = 1 if n_agents < 2000 else 2
                per = -(-n_agents // workers)
                base = rss_kb(h.gw_pid)
                t0 = time.monotonic()
                for w in range(workers):
                    count = min(per, n_agents - w * per)
                    if count > 0:
                        procs.start(
                            py(
                                "--agents-worker",
                                str(w * per),
                                str(count),
                                str(h.tunnel),
                                str(work / "pki"),
                            )
                        )
                want = n_agents + 1
                slowest = 0.0
                while True:
                    t_m = time.monotonic()
                    got = metric(h.admin, "hagate_agents_connected")
                    slowest = max(slowest, time.monotonic() - t_m)
                    if got >= want:
                        break
                    print(
                        f"  {got:.0f} of {want} agents connected after "
                        f"{time.monotonic() - t0:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    if time.monotonic() - t0 > 120 + n_agents / 20:
                        raise RuntimeError(f"only {got:.0f} of {want} agents connected")
                    time.sleep(2.0)
                up = time.monotonic() - t0
                time.sleep(2.0)  # settle
                rss = rss_kb(h.gw_pid)
                c0, w0 = cpu_seconds(h.gw_pid), time.monotonic()
                time.sleep(3.0)
                cpu = (cpu_seconds(h.gw_pid) - c0) / (time.monotonic() - w0) * 100
                per_agent = (rss - base) / n_agents
                notes.append(
                    f"{n_agents:,} idle agents connected in {up:.1f} s; gateway RSS "
                    f"{base / 1024:.1f} -> {rss / 1024:.1f} MiB = {per_agent:.1f} KiB per agent "
                    f"(target < 50); gateway CPU with all idle (300 ms heartbeat): {cpu:.0f}%; "
                    f"slowest /metrics answer while they connected: {slowest * 1000:.0f} ms"
                )
                rows.append(Row("idle agents connected", "count", None, n_agents))
                rows.append(
                    Row(
                        "gateway RSS per idle agent",
                        "KiB",
                        None,
                        per_agent,
                        1.7 * 1024 if not quick else None,
                        None,
                        False,
                    )
                )
        finally:
            procs.close()
    print(
        f"bench/tunnel {'--quick ' if quick else ''}({seconds:.0f} s per measurement, "
        "127.0.0.1, gateway and agent as separate processes)"
    )
    print_table(rows, with_ssh=not quick)
    for n in notes:
        print(f"- {n}")
    if not quick:
        print("- ssh -R RSS per idle tunnel is the earlier measurement (sshd PSS +1.6-1.8 MB)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="ours vs direct, built-in servers, no apt")
    p.add_argument("--seconds", type=float, help="per measurement (2 quick, 5 full)")
    p.add_argument("--agents", type=int, help="idle agents (200 quick, 10000 full)")
    p.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    p.add_argument("--serve-http", type=int, help=argparse.SUPPRESS)
    p.add_argument("--agents-worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up children on kill
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    if args.serve_http:
        serve_http(args.serve_http)
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
