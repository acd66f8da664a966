"""What the daemon adds to the shared mapping (:mod:`hagate.bridge`) to run an instance.

The mapping itself (params, receive checks, tracked items) is :func:`hagate.bridge.map_instance`,
the same the simulator uses. Here: the advert source chosen from the interface's addresses
(passed in, so this stays pure), script specs and their user, notify commands and the VIPs'
netlink details. Tracked items are named ``script NAME`` and ``interface NAME``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hagate.bridge import BridgeError, InstanceMap, TrackKind, map_instance, prefixed_name
from hagate.config import model as cfg
from hagate.daemon.cmdline import CommandLineError, ScriptCommand, split_words
from hagate.daemon.fifo import FifoSpec
from hagate.daemon.netlink import DEFAULT_MTU, SCOPES, Vip
from hagate.daemon.notify import NotifySpec
from hagate.daemon.scripts import (
    PROBE_INTERVAL_S,
    FileProbe,
    ProcessProbe,
    ScriptSpec,
    resolve_command,
)
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.receive import ReceiveParams

__all__ = [
    "BridgeError",
    "InstancePlan",
    "command",
    "disabled_scripts",
    "fifo_specs",
    "fit_instance",
    "interface_item",
    "pick_source",
    "plan_instance",
    "script_item",
    "script_spec",
]

log = logging.getLogger(__name__)

IPAddr = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class InstancePlan:
    """Everything to run one vrrp_instance, except live objects."""

    name: str
    interface: str
    family: int  # 4 or 6
    source: IPAddr
    destinations: tuple[IPAddr, ...]
    multicast: bool
    params: VrrpParams
    receive: ReceiveParams
    vips: tuple[Vip, ...]  # advertised (at most what one advert holds)
    notify: NotifySpec
    scripts: tuple[tuple[str, ScriptSpec], ...]  # (tracked item name, spec)
    interfaces: tuple[tuple[str, str], ...]  # (tracked item name, interface)
    config: cfg.VrrpInstance
    mapping: InstanceMap | None = None  # the shared mapping (notes, tracked items' origin)
    excluded: tuple[Vip, ...] = ()  # virtual_ipaddress_excluded (+ VIPs beyond the advert)
    sync_group: str | None = None  # its vrrp_sync_group (hagate.vrrp.syncgroup)
    group_notify: NotifySpec | None = None  # that group's notify scripts
    unicast_ttl: int = 255  # TTL / hop limit of unicast adverts (keepalived unicast_ttl)
    # virtual_routes / virtual_rules, held while master (their file lines dropped, so a
    # reload that only moves lines changes nothing)
    routes: tuple[cfg.VirtualRoute, ...] = ()
    rules: tuple[cfg.VirtualRule, ...] = ()
    # no_accept (vrrp_strict's default) and not the address owner: while master its VIPs
    # are blocked by nftables as keepalived's (hagate.daemon.firewall)
    block_vips: bool = False

    @property
    def all_vips(self) -> tuple[Vip, ...]:
        """Every address the instance holds while master, advertised or not."""
        return self.vips + self.excluded

    @property
    def groups(self) -> tuple[IPAddr, ...]:
        """The multicast groups its socket must join (mcast_dst_ip, vrrp_mcast_group4/6)."""
        return self.destinations if self.multicast else ()

    @property
    def send_ttl(self) -> int | None:
        """The TTL its adverts need beyond the socket's 255 (unicast_ttl; None: 255)."""
        return None if self.multicast else self.unicast_ttl


def script_item(name: str) -> str:
    return prefixed_name(TrackKind.SCRIPT, name)


def interface_item(name: str) -> str:
    return prefixed_name(TrackKind.INTERFACE, name)


def command(script: cfg.NotifyScript | None) -> ScriptCommand | None:
    """A notify line of the model as argv (split as keepalived splits it)."""
    if script is None:
        return None
    try:
        argv = split_words(script.command)
    except CommandLineError as exc:
        log.warning("%s: notify script %r ignored: %s", script.where, script.command, exc)
        return None
    if not argv:
        return None
    return ScriptCommand(argv=argv, user=script.user, group=script.group)


def script_spec(script: cfg.VrrpScript, default_user: str | None) -> ScriptSpec:
    try:
        argv = split_words(script.script)
    except CommandLineError as exc:
        raise BridgeError(f"vrrp_script {script.name}: {exc}") from None
    return ScriptSpec(
        name=script.name,
        argv=argv,
        interval=script.interval,
        timeout=script.timeout,
        weight=script.weight,
        weight_reverse=script.reverse,
        rise=script.rise,
        fall=script.fall,
        user=script.user or default_user,
        group=script.group,
        init_fail=False,  # keepalived 2.2.7: tracking a script resets init_fail (hagate.bridge)
    )


def pick_source(
    inst: cfg.VrrpInstance, family: int, addresses: Sequence[IPAddr], vips: Sequence[IPAddr]
) -> IPAddr:
    """Our advert source: unicast_src_ip / mcast_src_ip, else the interface's first address
    that is not a VIP (IPv6: its link-local address, RFC 9568 §5.1.2.1)."""
    configured = inst.unicast_src_ip or inst.mcast_src_ip
    if configured is not None:
        return configured
    vipset = set(vips)
    for addr in addresses:
        if addr.version != family or addr in vipset:
            continue
        if family == 6 and not addr.is_link_local:
            continue
        return addr
    kind = "IPv6 link-local" if family == 6 else "IPv4"
    raise BridgeError(f"({inst.name}) interface {inst.interface} has no {kind} address")


VRRP_MAX_ADDR = 255  # the advert's Count IPvX Addr field is one octet
_ETHER_HEADER = 14
_VRRP_HEADER = 8
_AUTH_LEN = 8  # VRRPv2 authentication data


def max_addresses(family: int, version: int, mtu: int) -> int:
    """How many VIPs fit in one advert: keepalived vrrp_complete_instance() (the frame within
    the interface MTU, at most 255)."""
    if family == 4:
        header = _ETHER_HEADER + 20 + _VRRP_HEADER + (_AUTH_LEN if version == 2 else 0)
        size = 4
    else:
        header, size = _ETHER_HEADER + 40 + _VRRP_HEADER, 16
    return max(0, min(VRRP_MAX_ADDR, (mtu - header) // size))


def fit_instance(
    inst: cfg.VrrpInstance, mtu: int = DEFAULT_MTU
) -> tuple[cfg.VrrpInstance, list[str]]:
    """What keepalived makes of an instance the model accepts but an advert cannot carry,
    with a note for each change (so that whatever ``hagate check`` accepts, the daemon runs):

    * VIPs of the other address family than the instance's are ignored (keepalived: "address
      family must match VRRP instance - ignoring");
    * VIPs beyond what one advert holds (255, or fewer within the MTU) are moved to the
      excluded VIPs: held while master, not advertised ("excess moved to eVIPs");
    * unicast peers of the other family are dropped; if none is left the instance
      advertises by multicast.
    """
    notes: list[str] = []
    label = f"({inst.name})"
    family = inst.family
    vips = tuple(v for v in inst.virtual_ipaddresses if v.address.version == family)
    for v in inst.virtual_ipaddresses:
        if v.address.version != family:
            notes.append(
                f"{label} virtual_ipaddress {v.address}: address family must match the "
                f"instance (IPv{family}) - ignoring"
            )
    excluded = inst.virtual_ipaddresses_excluded
    limit = max_addresses(family, inst.version, mtu)  # the model made IPv6 VRRPv3
    if len(vips) > limit:
        notes.append(
            f"{label} number of VIPs ({len(vips)}) exceeds the space in an advert (max "
            f"{limit} addresses) - excess moved to virtual_ipaddress_excluded"
        )
        vips, excluded = vips[:limit], vips[limit:] + excluded
    peers = tuple(p for p in inst.unicast_peers if p.address.version == family)
    for p in inst.unicast_peers:
        if p.address.version != family:
            notes.append(
                f"{label} unicast_peer {p.address} is not IPv{family} like the instance - dropped"
            )
    if inst.unicast_peers and not peers:
        notes.append(f"{label} no unicast_peer left: advertising by multicast")
    if not notes:
        return inst, notes
    fitted = dataclasses.replace(
        inst, virtual_ipaddresses=vips, virtual_ipaddresses_excluded=excluded, unicast_peers=peers
    )
    return fitted, notes


def _netlink_vip(v: cfg.VirtualIp, interface: str) -> Vip:
    return Vip(
        address=v.address,
        prefixlen=v.prefixlen,
        dev=v.dev or interface,
        brd=v.brd,
        scope=SCOPES.get(v.scope or "global", 0),
        label=v.label,
    )


def plan_instance(
    config: cfg.Config,
    inst: cfg.VrrpInstance,
    addresses: Sequence[IPAddr],
    disabled_scripts: frozenset[str] = frozenset(),
    default_user: str | None = None,
    mtu: int = DEFAULT_MTU,
) -> InstancePlan:
    """Plan one instance; ``addresses`` are those on its interface now, ``mtu`` its MTU."""
    if not inst.interface:
        raise BridgeError(f"({inst.name}) has no interface")
    inst, fitted = fit_instance(inst, mtu)
    for note in fitted:
        log.warning("%s", note)
    interface = inst.interface
    assert interface is not None
    vips = tuple(_netlink_vip(v, interface) for v in inst.virtual_ipaddresses)
    excluded = tuple(_netlink_vip(v, interface) for v in inst.virtual_ipaddresses_excluded)
    vip_addrs = tuple(v.address for v in inst.virtual_ipaddresses)
    source = pick_source(inst, inst.family, addresses, vip_addrs)
    mapped = map_instance(config, inst, source, disabled_scripts=disabled_scripts)
    for note in mapped.notes:
        log.warning("%s", note)
    user = config.global_defs.script_user or default_user
    scripts: list[tuple[str, ScriptSpec]] = []
    for tracked in mapped.scripts:
        script = config.script(tracked.name)
        assert script is not None  # map_instance drops unknown scripts
        scripts.append((tracked.item.name, script_spec(script, user)))
    for tracked in mapped.probes:
        spec = probe_spec(config, tracked.kind, tracked.name)
        if spec is not None:
            scripts.append((tracked.item.name, spec))
    notify = NotifySpec(
        master=command(inst.notify_master),
        backup=command(inst.notify_backup),
        fault=command(inst.notify_fault),
        stop=command(inst.notify_stop),
        generic=command(inst.notify),
        deleted=command(inst.notify_deleted_script),
        master_rx_lower_pri=command(inst.notify_master_rx_lower_pri),
        notify_deleted=inst.notify_deleted,
        priority_changes=config.notify_priority_changes(inst),
    )
    group = config.sync_group(mapped.sync_group)
    group_notify = None
    if group is not None:
        group_notify = NotifySpec(
            master=command(group.notify_master),
            backup=command(group.notify_backup),
            fault=command(group.notify_fault),
            stop=command(group.notify_stop),
            generic=command(group.notify),
        )
    return InstancePlan(
        name=inst.name,
        interface=interface,
        family=mapped.family,
        source=source,
        destinations=mapped.destinations,
        multicast=mapped.multicast,
        params=mapped.params,
        receive=mapped.receive,
        vips=vips,
        notify=notify,
        scripts=tuple(scripts),
        interfaces=tuple((t.item.name, t.name) for t in mapped.interfaces),
        config=inst,
        mapping=mapped,
        excluded=excluded,
        sync_group=mapped.sync_group,
        group_notify=group_notify,
        unicast_ttl=mapped.unicast_ttl,
        routes=tuple(dataclasses.replace(r, where=cfg.NOWHERE) for r in inst.virtual_routes),
        rules=tuple(dataclasses.replace(r, where=cfg.NOWHERE) for r in inst.virtual_rules),
        block_vips=not mapped.accept and not mapped.params.is_owner,
    )


def probe_spec(config: cfg.Config, kind: TrackKind, name: str) -> ScriptSpec | None:
    """A track_process / track_file as a check the script runner polls in-process (its
    name ``process:NAME`` / ``file:NAME`` never clashes with a vrrp_script's)."""
    if kind is TrackKind.PROCESS:
        p = config.track_process(name)
        if p is None:
            return None
        probe: ProcessProbe | FileProbe = ProcessProbe(
            p.process, p.params, p.param_match, p.full_command, p.quorum, p.quorum_max
        )
    else:
        tf = config.track_file(name)
        if tf is None:
            return None
        probe = FileProbe(tf.file, tf.init_file, tf.overwrite)
    return ScriptSpec(name=f"{kind}:{name}", argv=(), interval=PROBE_INTERVAL_S, probe=probe)


def fifo_specs(config: cfg.Config) -> list[FifoSpec]:
    """notify_fifo then vrrp_notify_fifo, each with its script (keepalived notify_fifo_open;
    the same path twice is one FIFO, with the global one's script)."""
    g = config.global_defs
    out: list[FifoSpec] = []
    for fifo, script in (
        (g.notify_fifo, g.notify_fifo_script),
        (g.vrrp_notify_fifo, g.vrrp_notify_fifo_script),
    ):
        if fifo is not None:
            out.append(FifoSpec(fifo.path, fifo.user, fifo.group, command(script)))
    return out


def disabled_scripts(config: cfg.Config) -> frozenset[str]:
    """vrrp_scripts keepalived would disable at start: command not found or not executable."""
    out: set[str] = set()
    for script in config.vrrp_scripts:
        try:
            argv = split_words(script.script)
        except CommandLineError:
            argv = ()
        if not argv or resolve_command(argv[0]) is None:
            out.add(script.name)
    return frozenset(out)
