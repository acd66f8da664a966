"""TLS handshake benchmark: where an agent's (re)connection costs CPU, ours vs baselines.

    python bench/handshake.py                 # ~1 min: every table below
    python bench/handshake.py --quick         # a few seconds: the smoke test's run
    python bench/handshake.py --before REV    # also the gateway as of git REV, same run

Two tables, both on this machine (127.0.0.1 only):

1. **In-process breakdown**: one server and one client ``SSLObject`` over memory BIOs in
   one thread, so each side's CPU is timed alone (median of many): a full handshake with our
   contexts, without the client certificate (what verifying it costs), with a P-256 key
   share instead of X25519, and resumed (stateless ticket; and hagate's derived ticket keys
   on a *second* context made from the same files, i.e. the other node).
2. **Loopback**: servers in their own process, clients in others, for ``--seconds`` each:
   a plain Python ``ssl`` server (threads, blocking: the floor for Python), ``openssl
   s_server`` with ``s_time`` (the floor for OpenSSL, full only), and ``hagate gateway``
   (a real process: accept, admission, handshake, peer identity, CRL check, first line,
   refusal). For each:
   handshakes/s and the *server's* CPU ms per handshake (from /proc; 1000 / that is what one
   core can accept), full and resumed. Client CPU (the agents' side) is shown too.

The machine is shared: compare rows of the same run (the ratios), not figures across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Files:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    def bundle(self, role: str, name: str) -> tuple[Path, Path]:
        d = self.root / "issued" / role / name
        return d / "cert.pem", d / "key.pem"

    @property
    def server(self) -> tuple[Path, Path]:
        return self.bundle("server", "gw")

    @property
    def device(self) -> tuple[Path, Path]:
        return self.bundle("device", "dev0")


def make_pki(root: Path) -> Files:
    from hagate.pki.ca import Role, init_ca, issue

    init_ca(root)
    issue(root, Role.SERVER, "gw", ips=[HOST])
    issue(root, Role.DEVICE, "dev0")
    return Files(root)


# ------------------------------------------------------------ in-process breakdown


def _pair(
    sctx: ssl.SSLContext, cctx: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[float, float, ssl.SSLObject, ssl.SSLObject]:
    """One handshake over memory BIOs; (server s, client s) of CPU, both objects."""
    sin, sout, cin, cout = (ssl.MemoryBIO() for _ in range(4))
    t0 = time.perf_counter()
    srv = sctx.wrap_bio(sin, sout, server_side=True)
    ts = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli = cctx.wrap_bio(cin, cout, server_hostname=HOST, session=session)
    tc = time.perf_counter() - t0
    sdone = cdone = False
    for _ in range(10):
        if not cdone:
            t0 = time.perf_counter()
            with contextlib.suppress(ssl.SSLWantReadError):
                cli.do_handshake()
                cdone = True
            tc += time.perf_counter() - t0
        sin.write(cout.read())
        if not sdone:
            t0 = time.perf_counter()
            with contextlib.suppress(ssl.SSLWantReadError):
                srv.do_handshake()
                srv.getpeercert()  # what the gateway does next: the identity
                sdone = True
            ts += time.perf_counter() - t0
        cin.write(sout.read())
        if sdone and cdone:
            break
    t0 = time.perf_counter()
    with contextlib.suppress(ssl.SSLWantReadError):
        cli.read(1)  # takes in the session tickets
    tc += time.perf_counter() - t0
    return ts, tc, srv, cli


@dataclass
class Split:
    name: str
    server_ms: float
    client_ms: float
    resumed: float  # the fraction of timed handshakes that resumed


def breakdown(files: Files, n: int) -> list[Split]:
    from hagate.net.tls import client_context, tunnel_server_context

    cert, key = files.server
    dcert, dkey = files.device

    def server(resumption: bool = True) -> ssl.SSLContext:
        cluster = "gw.bench" if resumption else None
        return tunnel_server_context(cert, key, files.ca, cluster=cluster)

    def measure(
        name: str,
        sctx: ssl.SSLContext,
        cctx: ssl.SSLContext,
        resume: bool = False,
        other: ssl.SSLContext | None = None,
    ) -> Split:
        """``other``: each timed resumption offers a fresh session from that context."""
        *_, cli = _pair(other or sctx, cctx, None)
        session = cli.session if resume else None
        times, reused = [], 0
        for _ in range(n):
            if other is not None:
                session = _pair(other, cctx, None)[3].session
            ts, tc, srv, cli = _pair(sctx, cctx, session)
            times.append((ts, tc))
            reused += srv.session_reused
            if resume and other is None and cli.session is not None:
                session = cli.session  # as an agent does: the newest ticket
        return Split(
            name,
            statistics.median(t[0] for t in times) * 1e3,
            statistics.median(t[1] for t in times) * 1e3,
            reused / n,
        )

    client = client_context(dcert, dkey, files.ca)
    rows = []
    rows.append(measure("full, as before (tickets off)", server(resumption=False), client))
    full = server()
    rows.append(measure("full, hagate tickets on", full, client))
    anon_server = server(resumption=False)
    anon_server.verify_mode = ssl.CERT_NONE
    anon = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anon.load_verify_locations(files.ca)
    rows.append(measure("full, no client certificate", anon_server, anon))
    p256 = client_context(dcert, dkey, files.ca)
    p256.set_ecdh_curve("prime256v1")
    rows.append(measure("full, P-256 key share (not X25519)", server(resumption=False), p256))
    rows.append(measure("resumed, same context", full, client, resume=True))
    rows.append(measure("resumed, other node's context", server(), client, resume=True, other=full))
    builtin = server(resumption=False)
    builtin.options &= ~ssl.OP_NO_TICKET
    builtin.num_tickets = 1
    rows.append(measure("resumed, OpenSSL's own ticket keys", builtin, client, resume=True))
    before = server(resumption=False)
    rows.append(measure("resumed, as before (stateful)", before, client, resume=True))
    other = server(resumption=False)
    rows.append(measure("other node, as before", before, client, resume=True, other=other))
    return rows


# --------------------------------------------------------------------- loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Loop:
    server: str
    mode: str
    handshakes: int
    resumed: int
    seconds: float
    server_cpu: float
    client_cpu: float
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.handshakes / self.seconds if self.seconds else 0.0

    def per(self, cpu: float) -> float:
        return cpu * 1e3 / self.handshakes if self.handshakes else float("nan")


FIRST_LINE = b'{"op":"data","session":"none","token":""}\n'


def client_worker(port: int, files: str, resume: bool, seconds: float, threads: int) -> None:
    """Handshake, send a first line, read to EOF; again, for ``seconds``. Prints JSON."""
    from hagate.net.tls import client_context

    f = Files(Path(files))
    ctx = client_context(*f.device, f.ca)
    counts = {"handshakes": 0, "resumed": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        session: ssl.SSLSession | None = None
        n = r = bad = 0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, port), timeout=5) as raw:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as agents do
                    ss = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
                    ss.sendall(FIRST_LINE)
                    while ss.recv(4096):
                        pass
                    n += 1
                    r += ss.session_reused
                    if resume:
                        session = ss.session
            except (OSError, ssl.SSLError):
                bad += 1
        with lock:
            counts["handshakes"] += n
            counts["resumed"] += r
            counts["failed"] += bad

    t0 = time.process_time()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({**counts, "cpu": time.process_time() - t0}))


def drive(
    name: str, mode: str, port: int, pid: int, files: Files, seconds: float, clients: int
) -> Loop:
    argv = [sys.executable, __file__, "--client", str(port), str(files.root), mode]
    argv += [str(seconds), "4"]
    t0, c0 = time.monotonic(), cpu_s(pid)
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(clients)]
    outs = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
    wall, cpu = time.monotonic() - t0, cpu_s(pid) - c0
    return Loop(
        name,
        mode,
        sum(o["handshakes"] for o in outs),
        sum(o["resumed"] for o in outs),
        wall,
        cpu,
        sum(o["cpu"] for o in outs),
        sum(o["failed"] for o in outs),
    )


def pyssl_server(port: int, files: str) -> None:
    """The Python floor: threads doing blocking handshakes with our context, no framework."""
    from hagate.net.tls import tunnel_server_context

    f = Files(Path(files))
    ctx = tunnel_server_context(*f.server, f.ca, cluster="gw.bench")
    lsock = socket.create_server((HOST, port), backlog=1024)

    def serve() -> None:
        while True:
            sock, _ = lsock.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the gateway does
            try:
                with ctx.wrap_socket(sock, server_side=True) as ss:
                    ss.getpeercert()
                    ss.recv(4096)
                    ss.sendall(b'{"op":"error","error":"no"}\n')
            except (OSError, ssl.SSLError):
                sock.close()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    threading.Event().wait()


@contextlib.contextmanager
def process(argv: list[str], port: int, **kw: object) -> Iterator[int]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    try:
        wait_port(port)
        time.sleep(0.3)  # imports done, loop idle
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gateway_toml(files: Files, port: int, admin: int, resumption: bool | None) -> str:
    cert, key = files.server
    tls = "" if resumption is None else f"resumption = {str(resumption).lower()}\n"
    return f"""domain = "gw.bench"
node = "bench"
[tls]
ca = "{files.ca}"
cert = "{cert}"
key = "{key}"
crl = "{files.root / "crl.pem"}"
{tls}[listen]
tunnel = "{HOST}:{port}"
admin = "{HOST}:{admin}"
[limits]
handshakes_per_address = 4096
"""


def run_gateway(
    label: str,
    src: Path,
    files: Files,
    work: Path,
    resumption: bool | None,
    modes: list[str],
    seconds: float,
    clients: int,
) -> list[Loop]:
    port, admin = free_port(), free_port()
    conf = work / f"gateway-{port}.toml"
    conf.write_text(gateway_toml(files, port, admin, resumption))
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, "-m", "hagate", "gateway", "-c", str(conf)]
    with process(argv, port, env=env) as pid:
        return [drive(label, m, port, pid, files, seconds, clients) for m in modes]


def run_pyssl(files: Files, seconds: float, clients: int) -> list[Loop]:
    port = free_port()
    argv = [sys.executable, __file__, "--pyssl-server", str(port), str(files.root)]
    with process(argv, port) as pid:
        return [
            drive("python ssl, threads", m, port, pid, files, seconds, clients)
            for m in ("full", "resumed")
        ]


def run_openssl(files: Files, seconds: float) -> list[Loop]:
    """openssl s_server + s_time (one sequential client: CPU per handshake is the figure)."""
    exe = shutil.which("openssl")
    if exe is None:
        return []
    port = free_port()
    cert, key = files.server
    dcert, dkey = files.device
    server = [exe, "s_server", "-quiet", "-accept", f"{HOST}:{port}", "-naccept", "1000000"]
    server += ["-cert", str(cert), "-key", str(key), "-CAfile", str(files.ca), "-Verify", "1"]
    server += ["-tls1_3"]
    rows = []
    with process(server, port) as pid:
        # Full only: s_time -reuse never reads TLS 1.3's post-handshake ticket, so it would
        # print full handshakes as "reuse" (its progress marks say '*', not 'r').
        for mode, flag in (("full", "-new"),):
            argv = [
                exe,
                "s_time",
                "-connect",
                f"{HOST}:{port}",
                flag,
                "-time",
                str(max(1, round(seconds))),
            ]
            argv += ["-cert", str(dcert), "-key", str(dkey), "-CAfile", str(files.ca)]
            t0, c0 = time.monotonic(), cpu_s(pid)
            r0 = resource_children()
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
            wall, cpu = time.monotonic() - t0, cpu_s(pid) - c0
            n = 0
            for line in out.splitlines():
                if "connections in" in line and "real" in line:
                    n = int(line.split()[0])
            # s_time prints one character per connection, 'r' for a resumed one
            marks = "".join(ln for ln in out.splitlines() if ln and set(ln) <= set("r*.12345"))
            reused = marks.count("r")
            rows.append(
                Loop(
                    "openssl s_server/s_time", mode, n, reused, wall, cpu, resource_children() - r0
                )
            )
    return rows


def resource_children() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------------ output


def print_breakdown(rows: list[Split]) -> None:
    print("\nIn-process, one handshake (median), CPU ms on each side:")
    print(f"  {'case':44} {'server ms':>10} {'client ms':>10}  resumed")
    for r in rows:
        print(f"  {r.name:44} {r.server_ms:10.3f} {r.client_ms:10.3f}  {100 * r.resumed:5.0f}%")


def print_loops(rows: list[Loop], ref: Callable[[Loop], Loop | None]) -> None:
    print("\nLoopback, server in its own process (server CPU from /proc):")
    head = f"  {'server':30} {'mode':8} {'hs/s':>7} {'resumed':>8} {'srv ms/hs':>9}"
    print(head + f" {'cli ms/hs':>9} {'srv max/s/core':>14} {'vs floor':>8}")
    for r in rows:
        base = ref(r)
        ratio = f"{r.per(r.server_cpu) / base.per(base.server_cpu):7.1f}x" if base else ""
        pct = f"{100 * r.resumed / r.handshakes:.0f}%" if r.handshakes else "-"
        cap = 1000 / r.per(r.server_cpu) if r.handshakes and r.server_cpu else float("nan")
        print(
            f"  {r.server:30} {r.mode:8} {r.rate:7.0f} {pct:>8} {r.per(r.server_cpu):9.3f}"
            f" {r.per(r.client_cpu):9.3f} {cap:14.0f} {ratio:>8}"
            + (f"  ({r.failed} failed)" if r.failed else "")
        )


def export_tree(rev: str, dest: Path) -> Path:
    """``src/`` of git revision ``rev``, unpacked under ``dest`` (no work tree touched)."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=True,
    ).stdout
    tar = dest / "before.tar"
    tar.write_bytes(data)
    with tarfile.open(tar) as t:
        t.extractall(dest / "before", filter="data")
    return dest / "before" / "src"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a few seconds: fewer rows, short runs")
    p.add_argument("--seconds", type=float, help="per loopback row (3; quick 0.7)")
    p.add_argument("--clients", type=int, default=2, help="client processes (4 threads each)")
    p.add_argument("--before", metavar="REV", help="also run the gateway of git REV")
    p.add_argument("--json", type=Path, help="write the rows here too")
    p.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--pyssl-server", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        port, files, mode, seconds, threads = args.client
        client_worker(int(port), files, mode == "resumed", float(seconds), int(threads))
        return 0
    if args.pyssl_server:
        pyssl_server(int(args.pyssl_server[0]), args.pyssl_server[1])
        return 0
    seconds = args.seconds or (0.7 if args.quick else 3.0)
    with tempfile.TemporaryDirectory(prefix="hagate-handshake-") as tmp:
        work = Path(tmp)
        files = make_pki(work / "pki")
        splits = breakdown(files, 40 if args.quick else 400)
        print_breakdown(splits)
        loops: list[Loop] = []
        loops += run_pyssl(files, seconds, args.clients)
        if not args.quick:
            loops += run_openssl(files, seconds)
        if args.before:
            src = export_tree(args.before, work)
            loops += run_gateway(
                f"hagate @{args.before[:10]}",
                src,
                files,
                work,
                None,
                ["full", "resumed"],
                seconds,
                args.clients,
            )
        loops += run_gateway(
            "hagate, resumption off",
            ROOT / "src",
            files,
            work,
            False,
            ["full"],
            seconds,
            args.clients,
        )
        loops += run_gateway(
            "hagate", ROOT / "src", files, work, True, ["full", "resumed"], seconds, args.clients
        )
        floor = {r.mode: r for r in loops if r.server == "python ssl, threads"}
        print_loops(loops, lambda r: floor.get(r.mode))
        print(
            f"\n(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: a shared machine)"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "breakdown": [s.__dict__ for s in splits],
                        "loopback": [
                            {**r.__dict__, "rate": r.rate, "server_ms": r.per(r.server_cpu)}
                            for r in loops
                        ],
                    },
                    indent=1,
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
