"""The simulated cluster: one host per keepalived.conf, its instances mapped to core params.

The mapping from the config model to :class:`~hagate.vrrp.params.VrrpParams` follows
keepalived's vrrp_complete_instance(); receive checks use keepalived 2.2.7's rules
(:mod:`hagate.vrrp.receive`). Scripts and interfaces become tracked items by name: their
results come from the scenario, so configs written for other hosts simulate fine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hagate.config import load
from hagate.config.findings import Finding, Impact, Severity
from hagate.config.model import AuthType as ConfigAuthType
from hagate.config.model import Config, VrrpScript
from hagate.config.model import State as ConfigState
from hagate.config.model import VrrpInstance as ConfigInstance
from hagate.vrrp.advert import AuthType, IPAddress
from hagate.vrrp.params import ParamsError, VrrpParams
from hagate.vrrp.receive import AddressCheck, ReceiveParams, UnicastPeer
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem


class ClusterError(ValueError):
    """The configs cannot be simulated (unreadable, keepalived would not start, ...)."""


@dataclass(frozen=True, slots=True)
class ScriptModel:
    """How a vrrp_script turns scenario results into a status (keepalived rise/fall)."""

    name: str
    interval: float = 1.0
    rise: int = 1
    fall: int = 1
    init_fail: bool = False


@dataclass(frozen=True, slots=True)
class SimInstance:
    """One vrrp_instance of one host, ready for the link."""

    key: str  # link node name: "host" or "host/instance"
    host: str
    name: str  # vrrp_instance name
    params: VrrpParams
    receive: ReceiveParams
    unicast_peers: frozenset[IPAddress]  # empty: multicast
    interfaces: tuple[str, ...]  # tracked interface names (own interface first)
    scripts: tuple[str, ...]  # tracked script names
    address_synthesized: bool = False


@dataclass(slots=True)
class Host:
    """One node of the cluster: a keepalived.conf and what it runs."""

    name: str
    path: Path
    config: Config
    instances: list[SimInstance] = field(default_factory=list)
    scripts: dict[str, ScriptModel] = field(default_factory=dict)

    def items(self) -> set[str]:
        """Every tracked script and interface name on this host."""
        out: set[str] = set()
        for inst in self.instances:
            out.update(inst.interfaces, inst.scripts)
        return out


@dataclass(slots=True)
class Cluster:
    hosts: list[Host]
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def instances(self) -> Iterator[SimInstance]:
        for host in self.hosts:
            yield from host.instances


def split_spec(spec: str) -> tuple[str | None, str]:
    """``NAME=FILE`` or ``FILE``."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and not Path(spec).exists():
        return name, path
    return None, spec


def load_cluster(specs: list[str]) -> Cluster:
    """Load one config per host (``[NAME=]FILE``); raises :class:`ClusterError`."""
    if not specs:
        raise ClusterError("no config files given")
    named: list[tuple[str, Path]] = []
    for spec in specs:
        given, file = split_spec(spec)
        named.append((given or Path(file).stem, Path(file)))
    names = [n for n, _ in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ClusterError(
            f"two configs would both be called {dupes[0]!r}; name them: "
            f"{dupes[0]}-a=FILE {dupes[0]}-b=FILE"
        )
    cluster = Cluster([])
    for name, path in named:
        if not path.is_file():
            raise ClusterError(f"{path}: no such file")
        config, findings = load(path)
        cluster.findings.extend(findings)
        fatal = [
            f for f in findings if f.severity is Severity.ERROR and f.impact is Impact.CANNOT_RUN
        ]
        if fatal:
            raise ClusterError(f"keepalived would not start with {path}: {fatal[0]}")
        if not config.vrrp_instances:
            raise ClusterError(f"{path}: no vrrp_instance to simulate")
        cluster.hosts.append(Host(name, path, config))
    _assign(cluster)
    return cluster


def _assign(cluster: Cluster) -> None:
    taken: set[IPAddress] = set()
    for host in cluster.hosts:
        for inst in host.config.vrrp_instances:
            taken.update(v.address for v in inst.virtual_ipaddresses)
            src = inst.unicast_src_ip or inst.mcast_src_ip
            if src is not None:
                taken.add(src)
    for index, host in enumerate(cluster.hosts, start=1):
        multi = len(host.config.vrrp_instances) > 1
        for inst in host.config.vrrp_instances:
            key = f"{host.name}/{inst.name}" if multi else host.name
            src = inst.unicast_src_ip or inst.mcast_src_ip
            synthesized = src is None
            if src is None:
                src = _synthesize(inst, index, taken)
                taken.add(src)
                cluster.notes.append(
                    f"{key} has no unicast_src_ip/mcast_src_ip: simulated with address {src} "
                    "(equal priorities are decided by the higher address)"
                )
            host.instances.append(_instance(cluster, host, inst, key, src, synthesized))
        if any(i.sync_group for i in host.config.vrrp_instances):
            cluster.notes.append(
                f"{host.name}: vrrp_sync_group members are simulated independently "
                "(their states are not tied together)"
            )


def _synthesize(inst: ConfigInstance, index: int, taken: set[IPAddress]) -> IPAddress:
    """Address ``index`` (then onwards) of the first VIP's subnet, else of TEST-NET-1."""
    if inst.virtual_ipaddresses:
        net = inst.virtual_ipaddresses[0].interface.network
    else:
        net = ipaddress.ip_network("192.0.2.0/24" if inst.family == 4 else "2001:db8::/64")
    base = int(net.network_address)
    for offset in range(index, net.num_addresses):
        addr = ipaddress.ip_address(base + offset)
        if addr not in taken and addr != net.broadcast_address:
            return addr
    return ipaddress.ip_address(base + index)


def _instance(
    cluster: Cluster, host: Host, inst: ConfigInstance, key: str, src: IPAddress, synth: bool
) -> SimInstance:
    config = host.config
    tracked: list[TrackedItem] = []
    interfaces: list[str] = []
    scripts: list[str] = []
    # keepalived tracks the instance's own interface: down puts the instance in FAULT.
    if inst.interface:
        listed = {t.name for t in inst.track_interfaces}
        if inst.interface not in listed:
            tracked.append(TrackedItem(inst.interface))
            interfaces.append(inst.interface)
    group = next((g for g in config.vrrp_sync_groups if g.name == inst.sync_group), None)
    track_ifs = inst.track_interfaces + (group.track_interfaces if group else ())
    track_scripts = inst.track_scripts + (group.track_scripts if group else ())
    for ti in track_ifs:
        if ti.name in interfaces:
            continue
        tracked.append(TrackedItem(ti.name, ti.weight, ti.reverse))
        interfaces.append(ti.name)
    for ref in track_scripts:
        script = config.script(ref.name)
        if script is None:
            cluster.notes.append(f"{key}: track_script {ref.name} has no vrrp_script: ignored")
            continue
        if ref.name in interfaces or ref.name in scripts:
            continue
        weight = ref.weight if ref.weight is not None else script.weight
        reverse = ref.reverse if ref.weight is not None else script.reverse
        # keepalived: init_fail starts the script failed until its first success.
        tracked.append(TrackedItem(ref.name, weight, reverse, initially_ok=not script.init_fail))
        scripts.append(ref.name)
        host.scripts.setdefault(ref.name, _script_model(script))
    g = config.global_defs
    try:
        params = VrrpParams(
            vrid=inst.virtual_router_id,
            primary_address=src,
            vips=tuple(v.address for v in inst.virtual_ipaddresses),
            version=inst.version,
            priority=inst.priority,
            advert_int=inst.advert_int,
            start_state=State.MASTER if inst.state is ConfigState.MASTER else State.BACKUP,
            nopreempt=inst.nopreempt,
            preempt_delay=inst.preempt_delay,
            tracked=tuple(tracked),
            garp_master_delay=inst.garp_master_delay,
            garp_master_repeat=inst.garp_master_repeat,
            garp_master_refresh=inst.garp_master_refresh,
            garp_master_refresh_repeat=inst.garp_master_refresh_repeat,
            garp_lower_prio_delay=inst.garp_lower_prio_delay,
            garp_lower_prio_repeat=inst.garp_lower_prio_repeat,
            down_timer_adverts=inst.down_timer_adverts,
            # RFC 9568 §9: VRRPv3 has no authentication (keepalived ignores it for v3).
            auth_type=_AUTH[inst.auth_type] if inst.version == 2 else AuthType.NONE,
            auth_data=inst.auth_data if inst.version == 2 else b"",
            strict_rfc=g.vrrp_strict,
            name=inst.name,
        )
    except (ParamsError, ValueError) as exc:
        raise ClusterError(f"{host.path}: {exc}") from None
    peers = frozenset(p.address for p in inst.unicast_peers)
    try:
        receive = _receive(inst, params, g.vrrp_check_unicast_src)
    except ValueError as exc:
        raise ClusterError(f"{host.path}: vrrp_instance {inst.name}: {exc}") from None
    for warning in params.warnings():
        cluster.notes.append(f"{key}: {warning}")
    return SimInstance(
        key,
        host.name,
        inst.name,
        params,
        receive,
        peers,
        tuple(interfaces),
        tuple(scripts),
        synth,
    )


def _receive(inst: ConfigInstance, params: VrrpParams, check_src: bool) -> ReceiveParams:
    return ReceiveParams(
        version=inst.version,
        vrid=inst.virtual_router_id,
        advert_int_cs=params.advert_int_cs,
        vips=params.vips,
        auth_type=params.auth_type if inst.version == 2 else AuthType.NONE,
        auth_pass=inst.auth_pass.encode()[:8] if inst.auth_type is ConfigAuthType.PASS else b"",
        unicast_peers=tuple(
            UnicastPeer(p.address, p.min_ttl or 0, 255 if p.max_ttl is None else p.max_ttl)
            for p in inst.unicast_peers
        ),
        check_unicast_src=inst.check_unicast_src or check_src,
        v3_checksum_as_v2=inst.v3_checksum_as_v2,
        address_check=AddressCheck.STRICT,  # keepalived 2.2.7 drops a different VIP list
    )


_AUTH = {
    ConfigAuthType.NONE: AuthType.NONE,
    ConfigAuthType.PASS: AuthType.PASS,
    ConfigAuthType.AH: AuthType.AH,
}


def _script_model(script: VrrpScript) -> ScriptModel:
    return ScriptModel(script.name, script.interval, script.rise, script.fall, script.init_fail)
