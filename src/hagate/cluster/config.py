"""gateway.toml's ``[cluster]`` section: what makes a gateway one of N active nodes.

```toml
[cluster]
etcd = ["10.1.1.21:2379", "10.1.1.22:2379", "10.1.1.23:2379"]
peer = "10.1.1.5:7444"          # node-to-node mTLS listener
# advertise = "10.1.1.5:7444"   # what other nodes dial (default: peer; required if 0.0.0.0)
cert = "pki/issued/node/node-1/cert.pem"   # a certificate of role node (hagate-node)
key = "pki/issued/node/node-1/key.pem"
lease_ttl = 10                  # s: a crashed node's devices leave the registry after this
etcd_timeout = 2.0              # s per etcd request
```

Every node may share one gateway.toml except ``peer``/``cert``/``key``; the node's name is the
top-level ``node`` (or ``--node``). No ``[cluster]``: a standalone node, as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hagate.net.conn import parse_hostport


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    etcd: tuple[tuple[str, int], ...]
    peer: tuple[str, int]
    advertise: str
    cert: Path
    key: Path
    lease_ttl: int = 10
    etcd_timeout: float = 2.0

    def with_node_files(self, peer: str, cert: Path, key: Path) -> ClusterConfig:
        """The same cluster for another node (labs write one file per node from one)."""
        host, port = parse_hostport(peer)
        return dataclasses.replace(self, peer=(host, port), advertise=peer, cert=cert, key=key)


KNOWN = {"etcd", "peer", "advertise", "cert", "key", "lease_ttl", "etcd_timeout"}


def parse_cluster_section(data: dict[str, Any], base: Path, name: str) -> ClusterConfig | None:
    """The ``[cluster]`` table of ``data`` or None; ValueError names file and key."""
    table = data.get("cluster")
    if table is None:
        return None
    w = f"{name}: [cluster] "
    if not isinstance(table, dict):
        raise ValueError(f"{name}: cluster must be a table")
    unknown = set(table) - KNOWN
    if unknown:
        raise ValueError(f"{w}unknown keys {sorted(unknown)} (known: {sorted(KNOWN)})")
    raw = table.get("etcd")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise ValueError(f'{w}etcd: a list of "host:port" (e.g. ["10.1.1.21:2379"])')
    etcd = tuple(_hostport(e, f"{w}etcd", 2379) for e in raw)
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
    return ClusterConfig(
        etcd, peer, advertise, _path(base, cert), _path(base, key), ttl, float(timeout)
    )


def _hostport(text: str, where: str, default: int | None) -> tuple[str, int]:
    try:
        return parse_hostport(text, default)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p
