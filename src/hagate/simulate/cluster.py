"""The simulated cluster: one host per keepalived.conf, its instances mapped to core params.

The mapping from the config model to the core is :func:`hagate.bridge.map_instance`, the same
the daemon uses. What is the simulator's own: addresses synthesized for instances without
unicast_src_ip/mcast_src_ip, and script models. Scripts and interfaces become tracked items
by their bare names: their results come from the scenario, so configs written for other
hosts simulate fine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hagate.bridge import BridgeError, bare_name, map_instance
from hagate.config import load
from hagate.config.findings import Finding, Impact, Severity
from hagate.config.model import Config, VrrpScript
from hagate.config.model import VrrpInstance as ConfigInstance
from hagate.vrrp.advert import IPAddress
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.receive import ReceiveParams


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
    interfaces: tuple[str, ...]  # tracked interfaces (own first), processes and files
    scripts: tuple[str, ...]  # tracked script names
    address_synthesized: bool = False
    sync_group: str | None = None  # vrrp_sync_group: its states are tied to the others'
    group_address: IPAddress | None = None  # multicast: mcast_dst_ip or the global group


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
    try:
        mapped = map_instance(config, inst, src, item_name=bare_name)
    except BridgeError as exc:
        raise ClusterError(f"{host.path}: {exc}") from None
    for tracked in mapped.scripts:
        script = config.script(tracked.name)
        assert script is not None  # map_instance drops unknown scripts
        host.scripts.setdefault(tracked.item.name, _script_model(script))
    cluster.notes.extend(f"{key}: {note}" for note in mapped.notes)
    return SimInstance(
        key,
        host.name,
        inst.name,
        mapped.params,
        mapped.receive,
        frozenset(p.address for p in inst.unicast_peers),
        tuple(t.item.name for t in (*mapped.interfaces, *mapped.probes)),
        tuple(t.item.name for t in mapped.scripts),
        synth,
        mapped.sync_group,
        None if not mapped.multicast else mapped.destinations[0],
    )


def reload_host(cluster: Cluster, host: Host, path: Path) -> tuple[list[SimInstance], Host]:
    """``host``'s instances as a reload with the config at ``path`` makes them (the same
    keys and advert sources); raises :class:`ClusterError` for what cannot be applied in
    place (an instance added, removed, or with another VRID, version, family or sync
    group: the daemon restarts those, which the simulator does not model)."""
    if not path.is_file():
        raise ClusterError(f"reload {host.name}: {path}: no such file")
    config, findings = load(path)
    fatal = [f for f in findings if f.severity is Severity.ERROR and f.impact is Impact.CANNOT_RUN]
    if fatal:
        raise ClusterError(f"reload {host.name}: the daemon would refuse {path}: {fatal[0]}")
    staged = Host(host.name, path, config)
    old = {i.name: i for i in host.instances}
    names = [i.name for i in config.vrrp_instances]
    if sorted(names) != sorted(old):
        raise ClusterError(
            f"reload {host.name}: {path} runs {', '.join(names) or 'nothing'} instead of "
            f"{', '.join(old)}: only changes in place are simulated (no instance added or "
            "removed)"
        )
    notes = Cluster([])
    out: list[SimInstance] = []
    for inst in config.vrrp_instances:
        before = old[inst.name]
        src = inst.unicast_src_ip or inst.mcast_src_ip or before.params.primary_address
        new = _instance(notes, staged, inst, before.key, src, before.address_synthesized)
        p, q = before.params, new.params
        same = (p.vrid, p.version, p.primary_address.version) == (
            q.vrid,
            q.version,
            q.primary_address.version,
        )
        if not same or before.sync_group != new.sync_group:
            raise ClusterError(
                f"reload {host.name}: {inst.name}'s VRID, version, family or sync group "
                "changed: the daemon restarts it, which is not simulated"
            )
        out.append(new)
    cluster.notes.extend(f"reload {n}" for n in notes.notes)
    return out, staged


def _script_model(script: VrrpScript) -> ScriptModel:
    # init_fail: no effect in keepalived 2.2.7 (hagate.bridge); the first result decides.
    return ScriptModel(script.name, script.interval, script.rise, script.fall)
