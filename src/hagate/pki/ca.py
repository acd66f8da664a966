"""The cluster's certificate authority: one directory of files, no database.

Layout of a PKI directory (the same CA/CRL files are copied to both gateway nodes)::

    ca.crt  ca.key  crl.pem
    issued/server/<name>/{cert.pem,key.pem,ca.crt}
    issued/device/<name>/{cert.pem,key.pem,ca.crt}
    issued/user/<name>/{cert.pem,key.pem,ca.crt}

A certificate's role is its subject OU (``hagate-device``, ``hagate-user``,
``hagate-server``); its name is the subject CN. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class PKIError(Exception):
    """A PKI operation that cannot be done (message is for the user)."""


class Role(Enum):
    DEVICE = "device"
    USER = "user"
    SERVER = "server"
    NODE = "node"  # a gateway node on the node-to-node peer channel (server and client)

    @property
    def ou(self) -> str:
        return f"hagate-{self.value}"


NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
USER_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._@-]{0,62}[A-Za-z0-9])?$")

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CRL = "crl.pem"
CRL_DAYS = 3650  # the gateway checks the CRL itself and ignores nextUpdate (see docs)


@dataclass(frozen=True, slots=True)
class Issued:
    """Paths of one issued bundle."""

    role: Role
    name: str
    directory: Path
    serial: int

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"


def check_name(role: Role, name: str) -> None:
    pattern = USER_RE if role is Role.USER else NAME_RE
    if not pattern.match(name):
        what = "user name" if role is Role.USER else "name (a DNS label: a-z, 0-9, '-')"
        raise PKIError(f"invalid {role.value} {what}: {name!r}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    except FileNotFoundError:
        raise PKIError(f"no CA in {directory} (run 'hagate pki init --dir {directory}')") from None
    except ValueError as exc:
        raise PKIError(f"unreadable CA in {directory}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{directory / CA_KEY} is not an EC key")
    return cert, key


def init_ca(directory: Path, name: str = "hagate cluster CA", days: int = 3650) -> Path:
    """Create the CA key, certificate and an empty CRL; refuse to overwrite."""
    if (directory / CA_KEY).exists():
        raise PKIError(f"{directory / CA_KEY} already exists; refusing to overwrite the CA")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / CA_KEY, _key_pem(key), private=True)
    _write(directory / CA_CERT, _cert_pem(cert))
    write_crl(directory, [])
    return directory / CA_CERT


def issue(
    directory: Path,
    role: Role,
    name: str,
    *,
    days: int = 1825,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    force: bool = False,
) -> Issued:
    """Issue a certificate bundle (cert, key, CA cert) for a device, user, server or node."""
    check_name(role, name)
    ca_cert, ca_key = load_ca(directory)
    out = directory / "issued" / role.value / name
    if (out / "cert.pem").exists() and not force:
        raise PKIError(f"{role.value} {name!r} already issued in {out} (use --force to re-issue)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.ou),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = _now()
    serial = x509.random_serial_number()
    ekus = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.SERVER:
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
    elif role is Role.NODE:
        ekus = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if role in (Role.SERVER, Role.NODE):
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in (dns or [name])]
        for ip in ips or []:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError:
                raise PKIError(f"invalid IP address for the server certificate: {ip!r}") from None
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(out / "key.pem", _key_pem(key), private=True)
    _write(out / "cert.pem", _cert_pem(cert))
    _write(out / "ca.crt", _cert_pem(ca_cert))
    return Issued(role, name, out, serial)


def revoked_serials(directory: Path) -> list[x509.RevokedCertificate]:
    path = directory / CRL
    if not path.exists():
        return []
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return list(crl)


def write_crl(directory: Path, revoked: list[x509.RevokedCertificate]) -> Path:
    ca_cert, ca_key = load_ca(directory)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=CRL_DAYS))
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    _write(directory / CRL, crl.public_bytes(serialization.Encoding.PEM))
    return directory / CRL


def revoke(directory: Path, name: str, role: Role | None = None) -> int:
    """Add the issued certificate of ``name`` to the CRL; return its serial."""
    roles = [role] if role else list(Role)
    found = [
        directory / "issued" / r.value / name / "cert.pem"
        for r in roles
        if (directory / "issued" / r.value / name / "cert.pem").exists()
    ]
    if not found:
        raise PKIError(f"no issued certificate named {name!r} in {directory / 'issued'}")
    if len(found) > 1:
        raise PKIError(f"{name!r} is issued in several roles; say which with --role")
    cert = x509.load_pem_x509_certificate(found[0].read_bytes())
    return revoke_serial(directory, cert.serial_number)


def revoke_serial(directory: Path, serial: int) -> int:
    entries = revoked_serials(directory)
    if any(e.serial_number == serial for e in entries):
        return serial
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_now()).build()
    write_crl(directory, [*entries, entry])
    return serial


def load_revoked(crl_path: Path, ca_path: Path) -> frozenset[int]:
    """Serials revoked by a CRL file, after checking it is signed by the CA."""
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
        ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read CRL {crl_path}: {exc}") from None
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
        public_key
    ):
        raise PKIError(f"CRL {crl_path} is not signed by the CA {ca_path}")
    return frozenset(entry.serial_number for entry in crl)
