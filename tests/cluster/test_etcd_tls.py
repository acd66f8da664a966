"""etcd over TLS with client certificates (``--client-cert-auth``), as production runs it:
the registry works with the cluster's certificates, and a wrong CA, a foreign client
certificate or plain http are each a clear error in /healthz, never a traceback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.cluster.conftest import EtcdServer
from tests.cluster.kit import node_config, until
from tests.gateway.kit import Pki

from hagate.cluster.config import EtcdSecurity
from hagate.cluster.etcd import Etcd
from hagate.cluster.registry import EtcdState, Registry
from hagate.gateway.server import Gateway
from hagate.pki.ca import Role, init_ca, issue
from hagate.tunnel.wire import ServiceKind, ServiceSpec

WEB = (ServiceSpec("http", ServiceKind.HTTP),)


def node_security(pki: Path, node: str, ca: Path | None = None) -> EtcdSecurity:
    bundle = pki / "issued" / "node" / node
    return EtcdSecurity(
        tls=True, ca=ca or pki / "ca.crt", cert=bundle / "cert.pem", key=bundle / "key.pem"
    )


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def registry(server: EtcdServer, node: str, security: EtcdSecurity) -> Registry:
    return Registry(Etcd([server.endpoint], 1.0, security), node, f"127.0.0.1:7{node[-1]}00", 2)


def test_the_registry_works_over_tls_with_node_certificates(
    etcd_tls: EtcdServer, cluster_pki_dir: Path
) -> None:
    async def main() -> None:
        a = registry(etcd_tls, "n1", node_security(cluster_pki_dir, "n1"))
        b = registry(etcd_tls, "n2", node_security(cluster_pki_dir, "n2"))
        a.start()
        b.start()
        try:
            a.publish("dev1", "s1", WEB)
            await until(lambda: b.route("dev1") is not None, 10, "b sees dev1 over TLS")
            health = a.health()
            assert health["etcd"] == "up" and str(health["etcd_endpoint"]).startswith("https://")
            st = await a.etcd.status()
            assert st["version"]
        finally:
            await a.stop()
            await b.stop()

    run(main)


@pytest.mark.parametrize("wrong", ["ca", "client", "plain"])
def test_a_wrong_ca_client_cert_or_plain_http_is_a_clear_error(
    etcd_tls: EtcdServer,
    cluster_pki_dir: Path,
    tmp_path: Path,
    wrong: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = tmp_path / "other-ca"
    init_ca(other, "not the cluster CA")
    issue(other, Role.NODE, "n1", ips=["127.0.0.1"])
    if wrong == "ca":  # etcd's certificate is not from the CA we trust
        security = node_security(cluster_pki_dir, "n1", ca=other / "ca.crt")
        expect = "CERTIFICATE_VERIFY_FAILED"
    elif wrong == "client":  # our certificate is not from the CA etcd trusts
        security = node_security(other, "n1", ca=cluster_pki_dir / "ca.crt")
        expect = "UNAVAILABLE"
    else:
        security = EtcdSecurity()
        expect = "UNAVAILABLE"

    async def main() -> None:
        a = registry(etcd_tls, "n1", security)
        a.start()
        try:
            await until(lambda: a.state is EtcdState.DOWN, 10, "etcd down")
            health = a.health()
            assert health["etcd"] == "down"
            error = str(health["etcd_error"])
            assert expect in error and "\n" not in error, error
            assert len(error) < 400
        finally:
            await a.stop()

    with caplog.at_level(logging.WARNING, "hagate.cluster"):
        run(main)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("etcd down" in r.getMessage() for r in caplog.records)


def test_a_gateway_with_the_wrong_ca_says_why_in_healthz(
    etcd_tls: EtcdServer, cluster_pki_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca"
    init_ca(other, "not the cluster CA")
    pki = Pki(cluster_pki_dir)
    security = node_security(cluster_pki_dir, "n1", ca=other / "ca.crt")

    async def main() -> None:
        gw = Gateway(node_config(pki, 1, etcd_tls.endpoint, {}, security))
        await gw.start()
        try:
            cluster = gw.cluster
            assert cluster is not None
            await until(lambda: cluster.registry.state is EtcdState.DOWN, 10, "etcd down")
            host, port = gw.addresses["admin"]
            url = f"http://{host}:{port}/healthz"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
            health = json.loads(body)
            assert health["ok"] is True  # the node serves its own devices: VIPs must not move
            assert health["cluster"]["etcd"] == "down"
            assert "not signed by etcd_ca" in health["cluster"]["etcd_error"]
            url = f"http://{host}:{port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
            assert b"\nhagate_cluster_etcd_up 0\n" in text
            assert b'\nhagate_cluster_lease_keepalives_total{result="ok"} 0\n' in text
        finally:
            await gw.stop()

    run(main)


def etcdctl(server: EtcdServer, pki: Path, *args: str, user: str = "") -> str:
    """etcdctl over TLS with node n1's certificate (and root's password once auth is on)."""
    import shutil
    import subprocess

    if shutil.which("etcdctl") is None:
        pytest.skip("etcdctl is not installed (Debian: etcd-client)")
    bundle = pki / "issued" / "node" / "n1"
    host, port = server.endpoint
    argv = [
        "etcdctl",
        f"--endpoints=https://{host}:{port}",
        f"--cacert={pki / 'ca.crt'}",
        f"--cert={bundle / 'cert.pem'}",
        f"--key={bundle / 'key.pem'}",
        *([f"--user={user}"] if user else []),
        *args,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    assert out.returncode == 0, (argv, out.stderr)
    return out.stdout


def test_etcd_auth_by_password_file_or_by_certificate_name(
    etcd_tls: EtcdServer, cluster_pki_dir: Path, tmp_path: Path
) -> None:
    """etcd's auth on: n1 logs in with etcd_user + etcd_password_file, n2 is known by its
    certificate's CN (no password), n3 has no etcd user: refused, and /healthz says so."""
    pki = cluster_pki_dir
    for args in (
        ("user", "add", "root", "--new-user-password=rootpw"),
        ("user", "grant-role", "root", "root"),
        ("role", "add", "hagate"),
        ("role", "grant-permission", "hagate", "--prefix=true", "readwrite", "/hagate/"),
        ("user", "add", "n1", "--new-user-password=n1pw"),
        ("user", "grant-role", "n1", "hagate"),
        ("user", "add", "n2", "--new-user-password=unused"),
        ("user", "grant-role", "n2", "hagate"),
        ("auth", "enable"),
    ):
        etcdctl(etcd_tls, pki, *args)
    pw = tmp_path / "n1-password"
    pw.write_text("n1pw\n")
    bad = tmp_path / "bad-password"
    bad.write_text("nope\n")
    sec1 = dataclasses.replace(node_security(pki, "n1"), user="n1", password_file=pw)
    wrong = dataclasses.replace(node_security(pki, "n1"), user="n1", password_file=bad)

    async def main() -> None:
        a = registry(etcd_tls, "n1", sec1)
        b = registry(etcd_tls, "n2", node_security(pki, "n2"))  # CN n2
        c = registry(etcd_tls, "n3", node_security(pki, "n3"))  # CN n3: no such etcd user
        d = registry(etcd_tls, "n1", wrong)
        for r in (a, b, c, d):
            r.start()
        try:
            a.publish("dev1", "s1", WEB)
            await until(lambda: b.route("dev1") is not None, 10, "n2 sees n1's device")
            await asyncio.sleep(1.0)  # > TTL / 3: the keeper thread refreshed, with a token
            assert a.keepalives[0] >= 1 and a.keepalives[1] == 0, a.keepalives
            await until(lambda: c.state is EtcdState.DOWN, 10, "n3 refused")
            await until(lambda: d.state is EtcdState.DOWN, 10, "a wrong password refused")
            assert "etcd refused etcd_user" in str(d.health()["etcd_error"])
            assert a.state is EtcdState.UP and b.state is EtcdState.UP
            assert "certificate's CN) has no read-write role" in str(c.health()["etcd_error"])
            # n1's main channel was idle past the 2 s token TTL: its next write renews the
            # token on the same channel, with no outage and the watch going on.
            await asyncio.sleep(2.5)
            a.publish("dev2", "s2", WEB)
            await until(lambda: b.route("dev2") is not None, 10, "n2 sees dev2")
            b.publish("dev3", "s3", WEB)
            await until(lambda: a.route("dev3") is not None, 10, "n1's watch goes on")
            assert a.etcd.token_renewals >= 1  # the expired token was seen and renewed
            assert a.outages == 0 and a.health()["etcd"] == "up"
        finally:
            for r in (a, b, c, d):
                await r.stop()

    run(main)


def test_config_warnings_are_logged_when_the_gateway_starts(
    etcd: EtcdServer, cluster_pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What `etcd_insecure = true` warns about is said once at start (a loopback etcd here:
    tests never dial another address)."""
    cfg = node_config(Pki(cluster_pki_dir), 1, etcd.endpoint, {})
    assert cfg.cluster is not None
    said = "gateway.toml: [cluster] etcd: plain http to 10.0.0.1:2379 (etcd_insecure = true)"
    cfg = dataclasses.replace(cfg, cluster=dataclasses.replace(cfg.cluster, warnings=(said,)))

    async def main() -> None:
        gw = Gateway(cfg)
        await gw.start()
        await gw.stop()

    with caplog.at_level(logging.WARNING, "hagate.cluster"):
        run(main)
    assert [r.getMessage() for r in caplog.records].count(said) == 1


def test_cluster_status_reads_a_tls_etcd_from_gateway_toml(
    etcd_tls: EtcdServer,
    cluster_pki_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hagate.cli import main

    host, port = etcd_tls.endpoint
    node = cluster_pki_dir / "issued" / "node" / "n1"
    gw = tmp_path / "gateway.toml"
    gw.write_text(
        f'domain = "gw.test"\n[tls]\nca = "{cluster_pki_dir / "ca.crt"}"\ncert = "c"\nkey = "k"\n'
        f'[cluster]\netcd = ["{host}:{port}"]\npeer = "127.0.0.1:7444"\n'
        f'cert = "{node / "cert.pem"}"\nkey = "{node / "key.pem"}"\n'
    )
    assert main(["cluster", "status", "-c", str(gw), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["etcd"]["healthy"] == 1 and report["etcd"]["readable"]
    gw.write_text(gw.read_text().replace(str(node / "key.pem"), str(tmp_path / "nokey.pem")))
    assert main(["cluster", "status", "-c", str(gw)]) == 1
    err = capsys.readouterr().err
    assert "etcd_key" in err and "nokey.pem" in err and "Traceback" not in err
