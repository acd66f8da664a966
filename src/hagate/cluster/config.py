"""gateway.toml's ``[cluster]`` section: what makes a gateway one of N active nodes.

```toml
[cluster]
etcd = ["10.1.1.21:2379", "10.1.1.22:2379", "10.1.1.23:2379"]   # https (TLS) unless http://
peer = "10.1.1.5:7444"          # node-to-node mTLS listener
# advertise = "10.1.1.5:7444"   # what other nodes dial (default: peer; required if 0.0.0.0)
cert = "pki/issued/node/node-1/cert.pem"   # a certificate of role node (hagate-node)
key = "pki/issued/node/node-1/key.pem"
lease_ttl = 10                  # s: a crashed node's devices leave the registry after this
etcd_timeout = 2.0              # s per etcd request
# etcd_ca = "pki/ca.crt"        # who signed etcd's server certificate (default: [tls] ca)
# etcd_cert = "..."             # our client certificate for etcd (default: cert above)
# etcd_key = "..."
# etcd_server_name = "etcd"     # the name to check in etcd's certificate (default: its host)
# etcd_user = "node-1"          # etcd auth; the password is read from a file, never inline
# etcd_password_file = "/etc/hagate/etcd-password"
# etcd_insecure = true          # allow http:// to a non-loopback etcd (warned about)
```

Every node may share one gateway.toml except ``peer``/``cert``/``key``; the node's name is the
top-level ``node`` (or ``--node``). No ``[cluster]``: a standalone node, as before.

etcd is reached over TLS by default, the server verified against ``etcd_ca`` and this node
presenting its node certificate (etcd's ``--client-cert-auth``). Plain ``http://`` is for a
loopback etcd, or anywhere else only with ``etcd_insecure = true``, and that is warned about
(``ClusterConfig.warnings``: logged at start and by `hagate cluster status`/`check`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.net.conn import parse_hostport


@dataclass(frozen=True, slots=True)
class EtcdSecurity:
    """How a node and etcd know each other: TLS (server verified, our client certificate)
    and optionally etcd's own user/password auth. The default is plain (loopback tests)."""

    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""  # checked in etcd's certificate instead of the dialled host
    user: str = ""
    password_file: Path | None = None

    def password(self) -> str:
        """The password, read now (a ValueError names the file when it cannot be read)."""
        if self.password_file is None:
            return ""
        try:
            text = self.password_file.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"etcd_password_file {self.password_file}: {exc.strerror or exc}"
            ) from None
        if not text:
            raise ValueError(f"etcd_password_file {self.password_file} is empty")
        return text


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    etcd: tuple[tuple[str, int], ...]
    peer: tuple[str, int]
    advertise: str
    cert: Path
    key: Path
    lease_ttl: int = 10
    etcd_timeout: float = 2.0
    etcd_security: EtcdSecurity = EtcdSecurity()
    warnings: tuple[str, ...] = ()  # said at start: e.g. plain http to etcd (etcd_insecure)

    def with_node_files(self, peer: str, cert: Path, key: Path) -> ClusterConfig:
        """The same cluster for another node (labs write one file per node from one)."""
        host, port = parse_hostport(peer)
        return dataclasses.replace(self, peer=(host, port), advertise=peer, cert=cert, key=key)


KNOWN = {
    "etcd",
    "peer",
    "advertise",
    "cert",
    "key",
    "lease_ttl",
    "etcd_timeout",
    "etcd_ca",
    "etcd_cert",
    "etcd_key",
    "etcd_server_name",
    "etcd_user",
    "etcd_password_file",
    "etcd_insecure",
}
LOOPBACK = ("127.", "::1", "localhost")


def parse_cluster_section(data: dict[str, Any], base: Path, name: str) -> ClusterConfig | None:
    """The ``[cluster]`` table of ``data`` or None; ValueError names file and key."""
    table = data.get("cluster")
    if table is None:
        return None
    w = f"{name}: [cluster] "
    if not isinstance(table, dict):
        raise ValueError(f"{name}: cluster must be a table")
    unknown = set(table) - KNOWN
    if "etcd_password" in unknown:
        raise ValueError(
            f"{w}etcd_password: never inline; put it in a file readable only by the gateway "
            "and name it in etcd_password_file"
        )
    if unknown:
        raise ValueError(f"{w}unknown keys {sorted(unknown)} (known: {sorted(KNOWN)})")
    raw = table.get("etcd")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise ValueError(f'{w}etcd: a list of "host:port" (e.g. ["10.1.1.21:2379"])')
    schemes = {_scheme(e) for e in raw}
    if len(schemes) > 1:
        raise ValueError(f"{w}etcd: every endpoint https (the default) or every one http://")
    etcd = tuple(_hostport(_strip_scheme(e), f"{w}etcd", 2379) for e in raw)
    peer_text = table.get("peer")
    if not isinstance(peer_text, str) or not peer_text:
        raise ValueError(f'{w}peer: the node-to-node listen address, e.g. "10.1.1.5:7444"')
    peer = _hostport(peer_text, f"{w}peer", None)
    advertise = table.get("advertise", peer_text)
    if not isinstance(advertise, str):
        raise ValueError(f"{w}advertise: expected a string")
    adv_host, _ = _hostport(advertise, f"{w}advertise", None)
    if adv_host in ("0.0.0.0", "::", ""):
        raise ValueError(
            f"{w}advertise: other nodes cannot dial {advertise!r}; name this node's IP"
        )
    cert, key = table.get("cert"), table.get("key")
    if not isinstance(cert, str) or not isinstance(key, str):
        raise ValueError(f"{w}cert and key: this node's certificate of role node (hagate-node)")
    ttl = table.get("lease_ttl", 10)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 2 <= ttl <= 600:
        raise ValueError(f"{w}lease_ttl: seconds, 2 to 600, got {ttl!r}")
    timeout = table.get("etcd_timeout", 2.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"{w}etcd_timeout: seconds > 0, got {timeout!r}")
    cert_path, key_path = _path(base, cert), _path(base, key)
    security, warnings = _security(table, data, base, w, schemes.pop(), etcd, cert_path, key_path)
    return ClusterConfig(
        etcd,
        peer,
        advertise,
        cert_path,
        key_path,
        ttl,
        float(timeout),
        security,
        tuple(warnings),
    )


def _security(
    table: dict[str, Any],
    data: dict[str, Any],
    base: Path,
    w: str,
    scheme: str,
    etcd: tuple[tuple[str, int], ...],
    cert: Path,
    key: Path,
) -> tuple[EtcdSecurity, list[str]]:
    """TLS unless http://; http:// only to loopback or with etcd_insecure = true (warned)."""
    strings = {}
    for name in ("etcd_ca", "etcd_cert", "etcd_key", "etcd_server_name", "etcd_user"):
        value = table.get(name, "")
        if not isinstance(value, str):
            raise ValueError(f"{w}{name}: expected a string")
        strings[name] = value
    insecure = table.get("etcd_insecure", False)
    if not isinstance(insecure, bool):
        raise ValueError(f"{w}etcd_insecure: true or false")
    pw = table.get("etcd_password_file")
    if pw is not None and (not isinstance(pw, str) or not pw):
        raise ValueError(f"{w}etcd_password_file: the path of a file holding the password")
    user = strings["etcd_user"]
    if bool(user) != bool(pw):
        raise ValueError(f"{w}etcd_user and etcd_password_file go together")
    warnings: list[str] = []
    tls = scheme == "https"
    if not tls:
        remote = [f"{h}:{p}" for h, p in etcd if not h.startswith(LOOPBACK)]
        if remote and not insecure:
            raise ValueError(
                f"{w}etcd: plain http to {', '.join(remote)} would carry the registry "
                "unencrypted and unauthenticated: use TLS (https, the default; etcd_ca, "
                "etcd_cert, etcd_key) or, knowingly, etcd_insecure = true"
            )
        if remote:
            warnings.append(
                f"{w}etcd: plain http to {', '.join(remote)} (etcd_insecure = true): anyone on "
                "the path can read and rewrite the device registry"
            )
        if user:
            warnings.append(f"{w}etcd_user: the etcd password goes over plain http")
        if any(strings[k] for k in ("etcd_ca", "etcd_cert", "etcd_key", "etcd_server_name")):
            warnings.append(f"{w}etcd_ca/etcd_cert/etcd_key are unused with http:// endpoints")
        return EtcdSecurity(user=user, password_file=_path(base, pw) if pw else None), warnings
    if insecure:
        warnings.append(f"{w}etcd_insecure has no effect: the etcd endpoints use TLS")
    gw_tls = data.get("tls")
    default_ca = gw_tls.get("ca") if isinstance(gw_tls, dict) else None
    ca = strings["etcd_ca"] or default_ca
    if not isinstance(ca, str) or not ca:
        raise ValueError(f"{w}etcd_ca: the CA of etcd's server certificate (or [tls] ca)")
    if bool(strings["etcd_cert"]) != bool(strings["etcd_key"]):
        raise ValueError(f"{w}etcd_cert and etcd_key go together")
    security = EtcdSecurity(
        tls=True,
        ca=_path(base, ca),
        cert=_path(base, strings["etcd_cert"]) if strings["etcd_cert"] else cert,
        key=_path(base, strings["etcd_key"]) if strings["etcd_key"] else key,
        server_name=strings["etcd_server_name"],
        user=user,
        password_file=_path(base, pw) if pw else None,
    )
    return security, warnings


def _scheme(text: str) -> str:
    return "http" if text.strip().lower().startswith("http://") else "https"


def _strip_scheme(text: str) -> str:
    t = text.strip()
    for prefix in ("http://", "https://"):
        if t.lower().startswith(prefix):
            return t[len(prefix) :].rstrip("/")
    return t


def _hostport(text: str, where: str, default: int | None) -> tuple[str, int]:
    try:
        return parse_hostport(text, default)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p
