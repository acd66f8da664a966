"""agent.toml (a device) and the same [tls]/gateway keys for a user's `connect`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.agent.redial import Backoff, Schedule, ScheduleKind, Steady
from hagate.gateway.config import ConfigError
from hagate.gateway.protocol import SERVICE_RE, ServiceKind, ServiceSpec
from hagate.net.conn import parse_hostport

DEFAULT_TUNNEL_PORT = 7443


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the gateway is and who we are."""

    host: str
    port: int
    server_name: str
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class LocalService:
    spec: ServiceSpec
    target_host: str
    target_port: int


@dataclass(frozen=True, slots=True)
class Reconnect:
    """[reconnect]: the redial schedule (hagate.agent.redial); ``steady`` unless told."""

    fast_retries: int = 3  # backoff only
    fast_delay: float = 0.1  # backoff only
    base_delay: float = 0.5  # backoff only
    max_delay: float = 30.0
    schedule: ScheduleKind = ScheduleKind.STEADY
    first: float = 0.05  # steady only
    period: float = 0.25  # steady only
    young: float = 15.0  # steady only

    def plan(self) -> Schedule:
        if self.schedule is ScheduleKind.BACKOFF:
            return Backoff(self.fast_retries, self.fast_delay, self.base_delay, self.max_delay)
        return Steady(self.first, self.period, self.young, self.max_delay)


@dataclass(frozen=True, slots=True)
class StandbyConfig:
    """[standby]: warm standby connections to the cluster's other nodes (docs/fleet.md).

    Used only when the gateway lists the other nodes' endpoints in its welcome (its
    ``[tunnel] standby_endpoints``). ``patience``: after losing the session, how long to
    wait for a standby's promotion before redialling the VIP as before. 8 s covers the
    VRRP Master_Down_Interval at advert_int 1 s (3 x 1 s + skew: 3.2-4 s) plus the new
    master's promotion of a large fleet (10,000 took 4.5 s on the bench's loaded 2-core
    machine, its agents included; agents that gave up at 5 s redialled by the thousand and
    made it slower); a loss that is no failover (the gateway process restarted while its
    node kept the VIP) costs at most this much longer than before.
    """

    enabled: bool = True
    patience: float = 8.0
    first: float = 1.0  # first dial of a standby: uniform in [first / 2, 3 first / 2]
    # The node just left may be dead: start slower (5-15 s), out of the storm's way.
    after_promotion: float = 10.0
    max_delay: float = 30.0  # failed dials back off (doubling, jittered) up to this


@dataclass(frozen=True, slots=True)
class AgentConfig:
    client: ClientConfig
    services: list[LocalService]
    reconnect: Reconnect = field(default_factory=Reconnect)
    standby: StandbyConfig = field(default_factory=StandbyConfig)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a file name")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def parse_client(data: dict[str, Any], base: Path, name: str) -> ClientConfig:
    gateway = data.get("gateway")
    if isinstance(gateway, dict):  # [gateway] cluster = "cluster.toml": the VIP of our name
        gateway = _cluster_gateway(gateway, data.get("tls"), base, name)
    if not isinstance(gateway, str):
        raise ConfigError(f"{name}: 'gateway' is required (e.g. gateway = \"gw.example.com:7443\")")
    try:
        host, port = parse_hostport(gateway, DEFAULT_TUNNEL_PORT)
    except ValueError as exc:
        raise ConfigError(f"{name}: gateway: {exc}") from None
    server_name = data.get("server_name", host)
    if not isinstance(server_name, str):
        raise ConfigError(f"{name}: server_name: expected a string")
    tls = data.get("tls")
    if not isinstance(tls, dict):
        raise ConfigError(f"{name}: a [tls] table with ca, cert and key is required")
    return ClientConfig(
        host=host,
        port=port,
        server_name=server_name,
        ca=_path(base, tls.get("ca"), f"{name}: [tls] ca"),
        cert=_path(base, tls.get("cert"), f"{name}: [tls] cert"),
        key=_path(base, tls.get("key"), f"{name}: [tls] key"),
    )


def _cluster_gateway(table: dict[str, Any], tls: Any, base: Path, name: str) -> str:
    """``[gateway] cluster = "cluster.toml"`` (and ``port``): the VIP `hagate cluster vip`
    gives this device, whose name is its certificate's CN (docs/scale.md)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from hagate.cluster.layout import LayoutError, load_layout, vip_for

    w = f"{name}: [gateway] "
    if set(table) - {"cluster", "port"}:
        raise ConfigError(f"{w}unknown keys {sorted(set(table) - {'cluster', 'port'})}")
    port = table.get("port", DEFAULT_TUNNEL_PORT)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{w}port: a port number, got {port!r}")
    try:
        layout = load_layout(_path(base, table.get("cluster"), f"{w}cluster"))
    except LayoutError as exc:
        raise ConfigError(f"{w}cluster: {exc}") from None
    cert = _path(base, tls.get("cert") if isinstance(tls, dict) else None, f"{name}: [tls] cert")
    try:
        subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
        device = str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    except (OSError, ValueError, IndexError) as exc:
        raise ConfigError(f"{w}cluster: the device name is the CN of {cert}: {exc}") from None
    return f"{vip_for(device, layout.vips())}:{port}"


def _service(raw: Any, where: str) -> LocalService:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    svc_name, kind, target = raw.get("name"), raw.get("type", "tcp"), raw.get("target")
    if not isinstance(svc_name, str) or not SERVICE_RE.match(svc_name):
        raise ConfigError(f"{where}: name must be a short lower-case label, got {svc_name!r}")
    try:
        k = ServiceKind(kind)
    except ValueError:
        raise ConfigError(f"{where}: type must be 'http' or 'tcp', got {kind!r}") from None
    if not isinstance(target, str):
        raise ConfigError(f'{where}: target = "HOST:PORT" is required')
    try:
        host, port = parse_hostport(target)
    except ValueError as exc:
        raise ConfigError(f"{where}: target: {exc}") from None
    want = raw.get("port")
    if want is not None and (not isinstance(want, int) or not 1 <= want <= 65535):
        raise ConfigError(f"{where}: port must be a port number")
    if want is not None and k is ServiceKind.HTTP:
        raise ConfigError(f"{where}: port is for tcp services (http goes by host name)")
    return LocalService(ServiceSpec(svc_name, k, want, port), host, port)


def parse_agent(data: dict[str, Any], base: Path, name: str = "agent.toml") -> AgentConfig:
    unknown = set(data) - {"gateway", "server_name", "tls", "service", "reconnect", "standby"}
    if unknown:
        raise ConfigError(f"{name}: unknown keys {sorted(unknown)}")
    client = parse_client(data, base, name)
    raw_services = data.get("service", [])
    if not isinstance(raw_services, list) or not raw_services:
        raise ConfigError(f"{name}: at least one [[service]] is required")
    services = [_service(s, f"{name}: service #{i + 1}") for i, s in enumerate(raw_services)]
    if len({s.spec.name for s in services}) != len(services):
        raise ConfigError(f"{name}: service names must be unique")
    rc = data.get("reconnect", {})
    if not isinstance(rc, dict):
        raise ConfigError(f"{name}: [reconnect] must be a table")
    known = {"fast_retries", "fast_delay_ms", "base_delay_ms", "max_delay_s", "schedule"}
    known |= {"first_ms", "period_ms", "young_s"}
    if set(rc) - known:
        raise ConfigError(f"{name}: [reconnect]: unknown keys {sorted(set(rc) - known)}")
    kinds = [k.value for k in ScheduleKind]
    if rc.get("schedule", "steady") not in kinds:
        raise ConfigError(f"{name}: [reconnect] schedule must be one of {kinds}")
    try:
        reconnect = Reconnect(
            fast_retries=int(rc.get("fast_retries", 3)),
            fast_delay=float(rc.get("fast_delay_ms", 100)) / 1000,
            base_delay=float(rc.get("base_delay_ms", 500)) / 1000,
            max_delay=float(rc.get("max_delay_s", 30)),
            schedule=ScheduleKind(rc.get("schedule", "steady")),
            first=float(rc.get("first_ms", 50)) / 1000,
            period=float(rc.get("period_ms", 250)) / 1000,
            young=float(rc.get("young_s", 15)),
        )
        reconnect.plan()  # Steady checks its numbers
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}: [reconnect] values must be numbers (0 < period_ms <= max_delay_s)"
        ) from None
    return AgentConfig(client, services, reconnect, _standby(data.get("standby", {}), name))


def _standby(sb: Any, name: str) -> StandbyConfig:
    """``[standby] enabled = true, patience_ms = 8000``."""
    if not isinstance(sb, dict):
        raise ConfigError(f"{name}: [standby] must be a table")
    if set(sb) - {"enabled", "patience_ms"}:
        raise ConfigError(
            f"{name}: [standby]: unknown keys {sorted(set(sb) - {'enabled', 'patience_ms'})}"
        )
    enabled, patience = sb.get("enabled", True), sb.get("patience_ms", 8000)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{name}: [standby] enabled: true or false")
    if (
        isinstance(patience, bool)
        or not isinstance(patience, (int, float))
        or not 0 <= patience <= 60_000
    ):
        raise ConfigError(f"{name}: [standby] patience_ms: a number of ms in 0..60000")
    return StandbyConfig(enabled=enabled, patience=float(patience) / 1000)


def load_agent_config(path: Path) -> AgentConfig:
    return parse_agent(_read(path), path.parent, str(path))


def load_client_config(path: Path) -> ClientConfig:
    return parse_client(_read(path), path.parent, str(path))
