"""A real single-member etcd on loopback per test that asks for it (never a mock)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hagate.lab import etcd as etcdproc
from hagate.pki.ca import Role, issue

try:  # the etcd client is the optional extra 'cluster' (also in 'test')
    import aetcd  # type: ignore[import-untyped]  # noqa: F401
except ImportError:
    collect_ignore = ["test_registry.py", "test_peer.py"]


@dataclass
class EtcdServer:
    member: etcdproc.Member
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()  # more etcd flags

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.member.host, self.member.client_port

    def start(self) -> None:
        """Start (or restart, keeping its data) and wait until the client port answers."""
        assert self.proc is None or self.proc.poll() is not None
        token = "hagate-test"
        argv = [*etcdproc.argv(self.member, [self.member], self.data_dir, token), *self.extra]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        etcdproc.wait_ready(self.member.host, self.member.client_port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian: etcd-server)")
    client, peer = etcdproc.free_loopback_ports(2)
    member = etcdproc.Member(f"t{secrets.token_hex(3)}", "127.0.0.1", client, peer)
    server = EtcdServer(member, tmp_path / "etcd-data", tmp_path / "etcd.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tls_server(pki_dir: Path) -> etcdproc.ServerTLS:
    """etcd's client-port certificate from the cluster's CA (SAN 127.0.0.1): ``hagate pki
    issue --server etcd --ip 127.0.0.1``; clients must show a certificate of the same CA."""
    bundle = pki_dir / "issued" / "server" / "etcd"
    if not (bundle / "cert.pem").exists():
        issue(pki_dir, Role.SERVER, "etcd", ips=["127.0.0.1"])
    return etcdproc.ServerTLS(bundle / "cert.pem", bundle / "key.pem", pki_dir / "ca.crt")


@pytest.fixture
def cluster_pki_dir(tmp_path: Path) -> Path:
    """The cluster PKI of tests.cluster.kit (nodes n1..n3), shared by etcd's TLS."""
    from tests.cluster.kit import cluster_pki

    return cluster_pki(tmp_path / "pki", 3).dir


@pytest.fixture
def etcd_tls(tmp_path: Path, cluster_pki_dir: Path) -> Iterator[EtcdServer]:
    """A loopback etcd whose client port is TLS only, client certificates required."""
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (Debian: etcd-server)")
    client, peer = etcdproc.free_loopback_ports(2)
    tls = tls_server(cluster_pki_dir)
    member = etcdproc.Member(f"t{secrets.token_hex(3)}", "127.0.0.1", client, peer, tls)
    # Auth tokens live 2 s (etcd's default is 300): the auth test sees one expire and renewed.
    extra = ("--auth-token-ttl", "2")
    server = EtcdServer(member, tmp_path / "etcd-data", tmp_path / "etcd.log", extra=extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _lab_requirements(request: pytest.FixtureRequest) -> None:
    """Lab tests skip cleanly without root, namespaces or etcd."""
    if request.node.get_closest_marker("lab") is not None:
        from hagate.lab import unavailable_reason

        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)
        if shutil.which("etcd") is None:
            pytest.skip("etcd is not installed (Debian: etcd-server)")
