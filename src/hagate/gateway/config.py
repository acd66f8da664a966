"""gateway.toml: everything a gateway node needs; both nodes of a cluster use the same file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.net.conn import parse_hostport


class ConfigError(Exception):
    """A configuration file that cannot be used (message names the file and the key)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    domain: str
    ca: Path
    cert: Path
    key: Path
    crl: Path | None
    tunnel: Endpoint
    http: Endpoint | None
    https: Endpoint | None
    admin: Endpoint | None
    https_cert: Path
    https_key: Path
    tcp_host: str
    tcp_ports: range
    tcp_pinned: dict[str, int] = field(default_factory=dict)
    users: dict[str, list[str]] | None = None
    streams_per_device: int = 256
    header_bytes: int = 16384
    heartbeat_ms: int = 300
    dead_after_ms: int = 3000
    pool: int = 2
    pool_idle: float = 60.0
    open_timeout: float = 5.0
    handshake_timeout: float = 10.0


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}{key}: expected {kind.__name__}, got {value!r}")
    return value


def _endpoint(text: str | None, where: str) -> Endpoint | None:
    if text is None or text == "":
        return None
    try:
        host, port = parse_hostport(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Endpoint(host, port)


def _path(base: Path, text: str | None) -> Path | None:
    if text is None:
        return None
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _port_range(text: str, where: str) -> range:
    lo_text, sep, hi_text = text.partition("-")
    try:
        lo, hi = int(lo_text), int(hi_text if sep else lo_text)
    except ValueError:
        raise ConfigError(f"{where}: expected 'LOW-HIGH', got {text!r}") from None
    if not 1 <= lo <= hi <= 65535:
        raise ConfigError(f"{where}: bad port range {text!r}")
    return range(lo, hi + 1)


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and check gateway.toml; relative paths are relative to the file."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_gateway_config(data, path.parent, str(path))


def parse_gateway_config(
    data: dict[str, Any], base: Path, name: str = "gateway.toml"
) -> GatewayConfig:
    known = {"domain", "tls", "listen", "tcp", "limits", "users"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{name}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    domain = _get(data, "domain", str, f"{name}: ")
    if not domain:
        raise ConfigError(f"{name}: 'domain' is required (e.g. domain = \"gw.example.com\")")
    tls = _get(data, "tls", dict, f"{name}: ", {})
    w = f"{name}: [tls] "
    ca, cert, key = (_path(base, _get(tls, k, str, w)) for k in ("ca", "cert", "key"))
    if ca is None or cert is None or key is None:
        raise ConfigError(f"{name}: [tls] needs ca, cert and key")
    crl = _path(base, _get(tls, "crl", str, w))
    https_cert = _path(base, _get(tls, "https_cert", str, w)) or cert
    https_key = _path(base, _get(tls, "https_key", str, w)) or key
    listen = _get(data, "listen", dict, f"{name}: ", {})
    w = f"{name}: [listen] "
    tunnel = _endpoint(_get(listen, "tunnel", str, w, "0.0.0.0:7443"), w + "tunnel")
    assert tunnel is not None
    http = _endpoint(_get(listen, "http", str, w, ""), w + "http")
    https = _endpoint(_get(listen, "https", str, w, ""), w + "https")
    admin = _endpoint(_get(listen, "admin", str, w, "127.0.0.1:9180"), w + "admin")
    tcp = _get(data, "tcp", dict, f"{name}: ", {})
    w = f"{name}: [tcp] "
    tcp_host = _get(tcp, "listen", str, w, "0.0.0.0")
    tcp_ports = _port_range(_get(tcp, "ports", str, w, "20000-29999"), w + "ports")
    pinned_raw = _get(tcp, "pinned", dict, w, {})
    pinned: dict[str, int] = {}
    for route, port in pinned_raw.items():
        if "/" not in route or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f'{w}pinned: expected "DEVICE/SERVICE" = PORT, got {route!r}')
        pinned[route] = port
    if len(set(pinned.values())) != len(pinned):
        raise ConfigError(f"{w}pinned: a port is pinned twice")
    users_raw = data.get("users")
    users: dict[str, list[str]] | None = None
    if users_raw is not None:
        if not isinstance(users_raw, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in users_raw.values()
        ):
            raise ConfigError(f"{name}: [users] maps a user name to a list of device patterns")
        users = {str(k): list(v) for k, v in users_raw.items()}
    limits = _get(data, "limits", dict, f"{name}: ", {})
    w = f"{name}: [limits] "
    cfg = GatewayConfig(
        domain=domain.lower().strip("."),
        ca=ca,
        cert=cert,
        key=key,
        crl=crl,
        tunnel=tunnel,
        http=http,
        https=https,
        admin=admin,
        https_cert=https_cert,
        https_key=https_key,
        tcp_host=tcp_host,
        tcp_ports=tcp_ports,
        tcp_pinned=pinned,
        users=users,
        streams_per_device=_get(limits, "streams_per_device", int, w, 256),
        header_bytes=_get(limits, "header_bytes", int, w, 16384),
        heartbeat_ms=_get(limits, "heartbeat_ms", int, w, 300),
        dead_after_ms=_get(limits, "dead_after_ms", int, w, 3000),
        pool=_get(limits, "pool", int, w, 2),
        pool_idle=_get(limits, "pool_idle_s", float, w, 60.0),
        open_timeout=_get(limits, "open_timeout", float, w, 5.0),
        handshake_timeout=_get(limits, "handshake_timeout", float, w, 10.0),
    )
    if cfg.heartbeat_ms < 50 or cfg.pool < 0 or cfg.pool > 16 or cfg.header_bytes < 1024:
        raise ConfigError(f"{w}heartbeat_ms >= 50, 0 <= pool <= 16, header_bytes >= 1024")
    if cfg.dead_after_ms < 2 * cfg.heartbeat_ms:
        raise ConfigError(f"{w}dead_after_ms must be at least twice heartbeat_ms")
    return cfg
