"""The file-based CA: bundles that OpenSSL accepts, roles, CRL, refusals without tracebacks."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from hagate.cli import main
from hagate.pki.ca import PKIError, Role, init_ca, issue, load_revoked, revoke, revoke_serial


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ca")
    init_ca(root)
    return root


def test_init_refuses_to_overwrite(ca_dir: Path) -> None:
    with pytest.raises(PKIError, match="refusing to overwrite"):
        init_ca(ca_dir)
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert load_revoked(ca_dir / "crl.pem", ca_dir / "ca.crt") == frozenset()


def test_issued_bundles_verify_with_openssl(ca_dir: Path) -> None:
    dev = issue(ca_dir, Role.DEVICE, "sensor-7")
    srv = issue(
        ca_dir, Role.SERVER, "gw", dns=["gw.example.com", "*.gw.example.com"], ips=["10.0.0.9"]
    )
    for bundle in (dev, srv):
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(bundle.ca), str(bundle.cert)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert bundle.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(srv.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "*.gw.example.com" in san.get_values_for_type(x509.DNSName)
    # Python's ssl accepts them as a server chain and a client chain.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(srv.cert, srv.key)
    ctx.load_verify_locations(srv.ca)


def test_names_are_checked(ca_dir: Path) -> None:
    for bad in ("Dev1", "dev_1", "-x", "a" * 70, "dev.1"):
        with pytest.raises(PKIError, match="invalid device"):
            issue(ca_dir, Role.DEVICE, bad)
    issue(ca_dir, Role.USER, "alice.smith@example")  # users may look like mail addresses
    with pytest.raises(PKIError, match="already issued"):
        issue(ca_dir, Role.USER, "alice.smith@example")
    issue(ca_dir, Role.USER, "alice.smith@example", force=True)


def test_revoke_writes_signed_crl(tmp_path: Path) -> None:
    init_ca(tmp_path)
    a = issue(tmp_path, Role.DEVICE, "a")
    b = issue(tmp_path, Role.DEVICE, "b")
    assert revoke(tmp_path, "a") == a.serial
    assert revoke(tmp_path, "a") == a.serial  # idempotent
    revoked = load_revoked(tmp_path / "crl.pem", tmp_path / "ca.crt")
    assert revoked == {a.serial} and b.serial not in revoked
    revoke_serial(tmp_path, 12345)
    assert load_revoked(tmp_path / "crl.pem", tmp_path / "ca.crt") == {a.serial, 12345}
    with pytest.raises(PKIError, match="no issued certificate"):
        revoke(tmp_path, "nobody")
    # A CRL signed by another CA is not believed.
    other = tmp_path / "other"
    init_ca(other)
    with pytest.raises(PKIError, match="not signed by the CA"):
        load_revoked(other / "crl.pem", tmp_path / "ca.crt")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "p")
    assert main(["pki", "issue", "x", "--dir", d]) == 1
    assert "pki init" in capsys.readouterr().err
    assert main(["pki", "init", "--dir", d]) == 0
    assert main(["pki", "issue", "dev1", "--dir", d, "--gateway", "10.0.0.100:7443"]) == 0
    from hagate.agent.config import load_agent_config

    agent = load_agent_config(Path(d) / "issued" / "device" / "dev1" / "agent.toml")
    assert (agent.client.host, agent.client.port) == ("10.0.0.100", 7443)
    assert agent.client.cert.exists() and agent.client.key.exists() and agent.client.ca.exists()
    assert main(["pki", "issue", "bob", "--user", "--dir", d]) == 0
    assert main(["pki", "issue", "dev2", "--dns", "x", "--dir", d]) == 1
    assert main(["pki", "issue", "gw", "--server", "--ip", "nonsense", "--dir", d]) == 1
    assert "invalid IP" in capsys.readouterr().err
    assert main(["pki", "revoke", "dev1", "--dir", d]) == 0
    assert main(["pki", "revoke", "--serial", "zz", "--dir", d]) == 1
    capsys.readouterr()
    assert main(["pki", "list", "--dir", d]) == 0
    out = capsys.readouterr().out
    assert "dev1" in out and "REVOKED" in out and "bob" in out


def test_cli_node_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    d = str(tmp_path)
    assert main(["pki", "init", "--dir", d]) == 0
    args = ["pki", "issue", "node-1", "--node", "--ip", "10.1.1.5", "--dns", "n1.lan"]
    assert main([*args, "--dir", d]) == 0
    assert "node node-1:" in capsys.readouterr().out
    bundle = tmp_path / "issued" / "node" / "node-1"
    cert = x509.load_pem_x509_certificate((bundle / "cert.pem").read_bytes())
    ou = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert ou == "hagate-node"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {EKU.SERVER_AUTH, EKU.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-1", "n1.lan"]  # its name kept
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.1.5"]
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(bundle / "ca.crt"),
            str(bundle / "cert.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert main(["pki", "issue", "node-1", "--node", "--gateway", "x:1", "--dir", d]) == 1
    assert "--gateway" in capsys.readouterr().err
    # One name, two roles: --role says which to revoke.
    assert main(["pki", "issue", "node-1", "--dir", d]) == 0  # a device called node-1 too
    assert main(["pki", "revoke", "node-1", "--role", "node", "--dir", d]) == 0
    capsys.readouterr()
    assert main(["pki", "list", "--dir", d]) == 0
    listing = capsys.readouterr().out.splitlines()
    states = {line.split()[0]: line.split()[-1] for line in listing if "node-1" in line}
    assert states == {"node": "REVOKED", "device": "valid"}, listing
