"""gateway.toml: everything a gateway node needs; both nodes of a cluster use the same file."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.cluster.config import ClusterConfig, parse_cluster_section
from hagate.net.conn import parse_hostport

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


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
    tcp_pinned: dict[str, int] = field(default_factory=dict)
    policy: Path | None = None
    token_revocations: Path | None = None
    access_log: Path | None = None
    access_log_format: str = "json"
    node: str = ""
    https_client_certs: bool = True
    streams_per_device: int = 256
    streams_per_principal: int = 32
    anonymous_share: float = 0.5
    requests_per_s: float = 1000.0
    max_handshakes: int = 2048
    handshakes_per_address: int = 256
    header_bytes: int = 16384
    heartbeat_ms: int = 300
    dead_after_ms: int = 3000
    pool: int = 2
    pool_idle: float = 60.0
    open_timeout: float = 5.0
    handshake_timeout: float = 10.0
    cluster: ClusterConfig | None = None  # [cluster]: one of N active nodes (docs/scale.md)
    resumption: bool = True  # [tls] resumption: tickets both nodes accept (docs/tls.md)
    ticket_secret: Path | None = None  # [tls] ticket_secret: else derived from the key file
    admin_token_file: Path | None = None  # [listen] admin_token_file: bearer token of /api/*
    admin_tls: bool = False  # [listen] admin_tls: /api/* over TLS with [tls] cert/key
    admin_insecure: bool = False  # [listen] admin_insecure: off loopback in clear, on purpose
    # [listen] trusted_proxies: peers whose X-Forwarded-For names the client (http/clientip.py)
    trusted_proxies: Networks = ()
    # [tunnel] standby_endpoints: every node's own tunnel address (docs/fleet.md, warm
    # standby); empty: no standby connections
    standby_endpoints: tuple[Endpoint, ...] = ()


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


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and check gateway.toml; relative paths are relative to the file."""
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_gateway_config(data, path.parent, str(path), text)


def parse_gateway_config(
    data: dict[str, Any], base: Path, name: str = "gateway.toml", text: str | None = None
) -> GatewayConfig:
    """``text`` (the file's own text) lets the errors that need one name a line too."""
    if "users" in data:
        raise ConfigError(
            f"{name}: [users] is replaced by the access policy: name a policy file in "
            "[policy] file = ... (see docs/policy.md)"
        )
    known = {"domain", "node", "tls", "listen", "tunnel", "tcp", "limits", "policy", "log"}
    known.add("cluster")
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
    admin_token_file = _path(base, _get(listen, "admin_token_file", str, w))
    admin_tls = bool(_get(listen, "admin_tls", bool, w, False))
    admin_insecure = bool(_get(listen, "admin_insecure", bool, w, False))
    if admin is not None:
        has_token = admin_token_file is not None
        problem = admin_exposure(admin.host, has_token, admin_tls, admin_insecure)
        if problem is not None:
            from hagate.policy.locate import Locator  # only here: `gateway check` starts fast

            bad, why = problem
            line = Locator(text).line("listen", key=bad) if text is not None else None
            at = f"{name}:{line}" if line is not None else name
            raise ConfigError(f"{at}: [listen] {bad}: {why}")
    trusted_proxies = _trusted_proxies(listen, name, text)
    tcp = _get(data, "tcp", dict, f"{name}: ", {})
    w = f"{name}: [tcp] "
    tcp_host = _get(tcp, "listen", str, w, "0.0.0.0")
    if "ports" in tcp:
        raise ConfigError(
            f"{w}ports: TCP ports are no longer derived from a range; list each device "
            'service\'s port in [tcp.pinned] ("DEVICE/SERVICE" = PORT, see docs/gateway.md)'
        )
    pinned_raw = _get(tcp, "pinned", dict, w, {})
    pinned: dict[str, int] = {}
    for route, port in pinned_raw.items():
        if "/" not in route or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f'{w}pinned: expected "DEVICE/SERVICE" = PORT, got {route!r}')
        pinned[route] = port
    if len(set(pinned.values())) != len(pinned):
        raise ConfigError(f"{w}pinned: a port is pinned twice")
    pol = _get(data, "policy", dict, f"{name}: ", {})
    w = f"{name}: [policy] "
    policy = _path(base, _get(pol, "file", str, w))
    token_revocations = _path(base, _get(pol, "token_revocations", str, w))
    logs = _get(data, "log", dict, f"{name}: ", {})
    w = f"{name}: [log] "
    access_log = _path(base, _get(logs, "access", str, w))
    access_fmt = _get(logs, "access_format", str, w, "json")
    if access_fmt not in ("json", "text"):
        raise ConfigError(f"{w}access_format: 'json' or 'text', got {access_fmt!r}")
    try:
        cluster = parse_cluster_section(data, base, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    standby_endpoints = _standby_endpoints(_get(data, "tunnel", dict, f"{name}: ", {}), name)
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
        tcp_pinned=pinned,
        policy=policy,
        token_revocations=token_revocations,
        access_log=access_log,
        access_log_format=access_fmt,
        node=_get(data, "node", str, f"{name}: ", "") or socket.gethostname(),
        https_client_certs=bool(_get(tls, "https_client_certs", bool, f"{name}: [tls] ", True)),
        streams_per_device=_get(limits, "streams_per_device", int, w, 256),
        streams_per_principal=_get(limits, "streams_per_principal", int, w, 32),
        anonymous_share=_get(limits, "anonymous_share", float, w, 0.5),
        requests_per_s=_get(limits, "requests_per_s", float, w, 1000.0),
        max_handshakes=_get(limits, "max_handshakes", int, w, 2048),
        handshakes_per_address=_get(limits, "handshakes_per_address", int, w, 256),
        header_bytes=_get(limits, "header_bytes", int, w, 16384),
        heartbeat_ms=_get(limits, "heartbeat_ms", int, w, 300),
        dead_after_ms=_get(limits, "dead_after_ms", int, w, 3000),
        pool=_get(limits, "pool", int, w, 2),
        pool_idle=_get(limits, "pool_idle_s", float, w, 60.0),
        open_timeout=_get(limits, "open_timeout", float, w, 5.0),
        handshake_timeout=_get(limits, "handshake_timeout", float, w, 10.0),
        cluster=cluster,
        resumption=bool(_get(tls, "resumption", bool, f"{name}: [tls] ", True)),
        ticket_secret=_path(base, _get(tls, "ticket_secret", str, f"{name}: [tls] ")),
        admin_token_file=admin_token_file,
        admin_tls=admin_tls,
        admin_insecure=admin_insecure,
        trusted_proxies=trusted_proxies,
        standby_endpoints=standby_endpoints,
    )
    if cfg.heartbeat_ms < 50 or cfg.pool < 0 or cfg.pool > 16 or cfg.header_bytes < 1024:
        raise ConfigError(f"{w}heartbeat_ms >= 50, 0 <= pool <= 16, header_bytes >= 1024")
    if not 0 <= cfg.anonymous_share <= 1 or cfg.streams_per_principal < 1:
        raise ConfigError(f"{w}0 <= anonymous_share <= 1, streams_per_principal >= 1")
    if cfg.dead_after_ms < 2 * cfg.heartbeat_ms:
        raise ConfigError(f"{w}dead_after_ms must be at least twice heartbeat_ms")
    return cfg


def _standby_endpoints(table: dict[str, Any], name: str) -> tuple[Endpoint, ...]:
    """``[tunnel] standby_endpoints = ["10.0.0.1:7443", "10.0.0.2:7443"]``: IP:port each."""
    w = f"{name}: [tunnel] "
    if set(table) - {"standby_endpoints"}:
        raise ConfigError(f"{w}unknown keys {sorted(set(table) - {'standby_endpoints'})}")
    raw = table.get("standby_endpoints", [])
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise ConfigError(f'{w}standby_endpoints: a list of "IP:PORT" strings, got {raw!r}')
    if len(raw) > 16:
        raise ConfigError(f"{w}standby_endpoints: at most 16 nodes")
    out: list[Endpoint] = []
    for entry in raw:
        ep = _endpoint(entry, f"{w}standby_endpoints {entry!r}")
        try:
            ipaddress.ip_address(ep.host if ep else "")
        except ValueError:
            raise ConfigError(
                f"{w}standby_endpoints {entry!r}: a node's own IP address and the tunnel port"
            ) from None
        if ep is not None and ep not in out:
            out.append(ep)
    return tuple(out)


def _trusted_proxies(listen: dict[str, Any], name: str, text: str | None) -> Networks:
    """``[listen] trusted_proxies = ["10.0.0.0/24", "::1"]``: a bad entry names its line."""
    raw = listen.get("trusted_proxies", [])
    try:
        if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
            raise ValueError(f"expected a list of CIDR strings, got {raw!r}")
        out = []
        for entry in raw:
            try:
                out.append(ipaddress.ip_network(entry.strip()))
            except ValueError as exc:
                raise ValueError(f"{entry!r}: {exc}") from None
        return tuple(out)
    except ValueError as exc:
        from hagate.policy.locate import Locator  # only here: `gateway check` starts fast

        line = Locator(text).line("listen", key="trusted_proxies") if text is not None else None
        at = f"{name}:{line}" if line is not None else name
        raise ConfigError(f"{at}: [listen] trusted_proxies: {exc}") from None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``. A wildcard (0.0.0.0, ::) or any other name is not:
    a name is not resolved here, so it counts as reachable from elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_exposure(host: str, has_token: bool, tls: bool, insecure: bool) -> tuple[str, str] | None:
    """Why the admin listener may not bind ``host`` as configured: (the key to fix, why), or
    None. Off loopback its ``/api/*`` needs the bearer token (else any host that reaches it
    reads the devices and the access log) and TLS for that token (else it crosses the network
    in clear), unless ``admin_insecure = true`` says the network is trusted."""
    if tls and insecure:
        return "admin_insecure", "admin_tls = true already encrypts the listener; drop one of them"
    if is_loopback(host):
        return None
    if not has_token:
        return "admin", (
            f"{host} is not loopback and no admin_token_file is set: every host that reaches "
            "it could read the device list and the access log; bind it to 127.0.0.1, or set "
            "admin_token_file and admin_tls = true (docs/gateway.md)"
        )
    if not tls and not insecure:
        return "admin", (
            f"{host} is not loopback: the admin token would cross the network in clear; set "
            "admin_tls = true (served with [tls] cert/key; the console checks it against "
            "[tls] ca), or admin_insecure = true on a trusted management network"
        )
    return None


MIN_TOKEN = 16
TOKEN_HINT = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE"


def read_token_file(
    path: Path, what: str = "[listen] admin_token_file", owner: int | None = None
) -> str:
    """The admin token in ``path``, refused (as ssh refuses a key) unless only its owner may
    read it and that owner is the reading user (``owner``, default the effective uid) or root:
    a token other local users can read protects nothing, and one another user owns may be
    swapped for a token that user knows.

    Read when the admin listener starts, not when the config is loaded, so that
    ``hagate gateway check`` (vrrp_script, maybe another user) never needs the secret.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path}: not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        me = os.geteuid() if owner is None else owner
        if st.st_uid not in (me, 0):
            raise ConfigError(
                f"{what} {path}: owned by uid {st.st_uid}, not by this process's user "
                f"(uid {me}) or root; chown it to the user the gateway/console runs as"
            )
        if mode & 0o077:
            raise ConfigError(
                f"{what} {path}: mode {mode:04o} gives group or others access; "
                f"chmod 600 {path} (only its owner may read an admin token)"
            )
        raw = f.read(4097)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: the token must be ASCII") from None
    if len(raw) > 4096 or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError(f"{what} {path}: want one line, a token without spaces")
    if len(token) < MIN_TOKEN:
        raise ConfigError(f"{what} {path}: at least {MIN_TOKEN} characters ({TOKEN_HINT})")
    return token
