"""Map the keepalived.conf model (hagate.config) to what the core and the driver need.

Pure functions: the only host fact they take is the interface's address list, passed in.
Tracked items are named ``script NAME`` and ``interface NAME``; every instance also tracks
its own interface with weight 0 (keepalived: an instance whose interface is down is in
FAULT, unless ``dont_track_primary``, which hagate does not support).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hagate.config import model as cfg
from hagate.daemon.cmdline import CommandLineError, ScriptCommand, split_words
from hagate.daemon.netlink import SCOPES, Vip
from hagate.daemon.notify import NotifySpec
from hagate.daemon.scripts import ScriptSpec, resolve_command
from hagate.vrrp.advert import AuthType
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.receive import ReceiveParams, UnicastPeer
from hagate.vrrp.state import State
from hagate.vrrp.tracking import TrackedItem

log = logging.getLogger(__name__)

IPAddr = IPv4Address | IPv6Address


class BridgeError(ValueError):
    """The configuration cannot be run (the message names the instance and why)."""


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
    vips: tuple[Vip, ...]
    notify: NotifySpec
    scripts: tuple[tuple[str, ScriptSpec], ...]  # (tracked item name, spec)
    interfaces: tuple[tuple[str, str], ...]  # (tracked item name, interface)
    config: cfg.VrrpInstance


def script_item(name: str) -> str:
    return f"script {name}"


def interface_item(name: str) -> str:
    return f"interface {name}"


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
        init_fail=script.init_fail,
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


def plan_instance(
    config: cfg.Config,
    inst: cfg.VrrpInstance,
    addresses: Sequence[IPAddr],
    disabled_scripts: frozenset[str] = frozenset(),
    default_user: str | None = None,
) -> InstancePlan:
    """Plan one instance; ``addresses`` are those on its interface now."""
    if not inst.interface:
        raise BridgeError(f"({inst.name}) has no interface")
    family = inst.family
    version = 3 if family == 6 else inst.version
    g = config.global_defs
    vips = tuple(
        Vip(
            address=v.address,
            prefixlen=v.prefixlen,
            dev=v.dev or inst.interface,
            brd=v.brd,
            scope=SCOPES.get(v.scope or "global", 0),
            label=v.label,
        )
        for v in inst.virtual_ipaddresses
    )
    vip_addrs = tuple(v.address for v in inst.virtual_ipaddresses)
    source = pick_source(inst, family, addresses, vip_addrs)

    tracked: list[TrackedItem] = []
    scripts: list[tuple[str, ScriptSpec]] = []
    for ts in inst.track_scripts:
        script = config.script(ts.name)
        if script is None:
            log.warning("(%s) track_script %s: no such vrrp_script; ignored", inst.name, ts.name)
            continue
        if ts.name in disabled_scripts:
            continue
        spec = script_spec(script, g.script_user or default_user)
        weight = script.weight if ts.weight is None else ts.weight
        reverse = ts.reverse if ts.weight is not None else script.reverse
        item = script_item(ts.name)
        # No result yet: no weight applied (keepalived SCRIPT_INIT_STATE_INIT); a weight-0
        # script holds the instance until its first result (the driver defers start()).
        initially_ok = (weight < 0) != reverse if weight else not reverse
        tracked.append(TrackedItem(item, weight, reverse, initially_ok=initially_ok))
        scripts.append((item, spec))

    interfaces: list[tuple[str, str]] = []
    seen_if: set[str] = set()
    for ti in (*inst.track_interfaces, cfg.TrackInterface(inst.interface)):
        if ti.name in seen_if:
            continue
        seen_if.add(ti.name)
        item = interface_item(ti.name)
        tracked.append(TrackedItem(item, ti.weight, ti.reverse, initially_ok=True))
        interfaces.append((item, ti.name))

    auth = {
        cfg.AuthType.NONE: AuthType.NONE,
        cfg.AuthType.PASS: AuthType.PASS,
        cfg.AuthType.AH: AuthType.AH,
    }[inst.auth_type]
    if auth is AuthType.AH:
        raise BridgeError(f"({inst.name}) auth_type AH is not supported; use PASS or none")
    if version == 3:
        auth = AuthType.NONE  # keepalived ignores authentication for VRRPv3
    auth_data = inst.auth_data if auth is AuthType.PASS else b""
    try:
        params = VrrpParams(
            vrid=inst.virtual_router_id,
            primary_address=source,
            vips=vip_addrs,
            version=version,
            priority=inst.priority,
            advert_int=inst.advert_int,
            start_state=State.MASTER if inst.state is cfg.State.MASTER else State.BACKUP,
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
            auth_type=auth,
            auth_data=auth_data,
            strict_rfc=g.vrrp_strict,
            name=inst.name,
        )
        receive = ReceiveParams(
            version=version,
            vrid=inst.virtual_router_id,
            advert_int_cs=params.advert_int_cs,
            vips=vip_addrs,
            auth_type=auth,
            auth_pass=inst.auth_pass.encode()[:8] if auth is AuthType.PASS else b"",
            unicast_peers=tuple(
                UnicastPeer(
                    p.address,
                    0 if p.min_ttl is None else p.min_ttl,
                    255 if p.max_ttl is None else p.max_ttl,
                )
                for p in inst.unicast_peers
            ),
            check_unicast_src=inst.check_unicast_src or g.vrrp_check_unicast_src,
            v3_checksum_as_v2=inst.v3_checksum_as_v2 or g.vrrp_v3_checksum_as_v2,
        )
    except ValueError as exc:
        raise BridgeError(f"({inst.name}) {exc}") from None

    if inst.unicast_peers:
        destinations: tuple[IPAddr, ...] = tuple(p.address for p in inst.unicast_peers)
        multicast = False
    else:
        destinations = (g.vrrp_mcast_group6 if family == 6 else g.vrrp_mcast_group4,)
        multicast = True
    notify = NotifySpec(
        master=command(inst.notify_master),
        backup=command(inst.notify_backup),
        fault=command(inst.notify_fault),
        stop=command(inst.notify_stop),
        generic=command(inst.notify),
    )
    return InstancePlan(
        name=inst.name,
        interface=inst.interface,
        family=family,
        source=source,
        destinations=destinations,
        multicast=multicast,
        params=params,
        receive=receive,
        vips=vips,
        notify=notify,
        scripts=tuple(scripts),
        interfaces=tuple(interfaces),
        config=inst,
    )


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
