"""Debian's etcd (``/usr/bin/etcd``, 3.4) as a test and lab peer: argv for one member of an
N-member cluster, on loopback ports or on a lab node's namespace address.

With :class:`ServerTLS` the client port speaks TLS only and wants a client certificate from
the trusted CA (``--client-cert-auth``), as a production etcd for hagate should; the member to
member (peer) traffic stays plain: it never leaves the lab's namespaces or loopback.

Only the argument list and the readiness probe live here; the caller starts the process
(``subprocess.Popen`` on loopback, :meth:`hagate.lab.node.Node.spawn` in a namespace) so it is
killed with everything else the caller owns.
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from hagate.lab.errors import LabError


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """etcd's client-port TLS: its certificate and key, and the CA its clients' come from."""

    cert: Path
    key: Path
    trusted_ca: Path

    def args(self) -> list[str]:
        return [
            "--cert-file",
            str(self.cert),
            "--key-file",
            str(self.key),
            "--trusted-ca-file",
            str(self.trusted_ca),
            "--client-cert-auth",
        ]


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    host: str
    client_port: int = 2379
    peer_port: int = 2380
    tls: ServerTLS | None = None

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"


def binary() -> str:
    path = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if path is None:
        raise LabError("etcd is not installed (Debian: apt-get install etcd-server)")
    return path


def argv(
    member: Member,
    cluster: list[Member],
    data_dir: Path,
    token: str,
    heartbeat_ms: int = 50,
    election_ms: int = 500,
) -> list[str]:
    """One member of ``cluster``; fast timers by default (a lab's links have sub-ms RTT; a
    loaded machine wants etcd's own 100/1000 or more, or leaders change under load)."""
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    return [
        binary(),
        "--name",
        member.name,
        "--data-dir",
        str(data_dir),
        "--listen-client-urls",
        member.client_url,
        "--advertise-client-urls",
        member.client_url,
        "--listen-peer-urls",
        member.peer_url,
        "--initial-advertise-peer-urls",
        member.peer_url,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
        "--heartbeat-interval",
        str(heartbeat_ms),
        "--election-timeout",
        str(election_ms),
        "--log-level",
        "warn",
        "--logger",
        "zap",
        *(member.tls.args() if member.tls is not None else []),
    ]


def free_loopback_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` right now (bound once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_ready(host: str, port: int, timeout: float = 10.0) -> None:
    """Until the client port accepts TCP (etcd opens it once it has joined its cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise LabError(f"etcd at {host}:{port} not ready after {timeout:g} s") from None
            time.sleep(0.05)
