"""The one mapping from the keepalived.conf model to the VRRP core's parameters.

``hagate vrrp`` (hagate.daemon.plan) and ``hagate simulate`` (hagate.simulate.cluster) both
call :func:`map_instance`, so a config behaves the same in the daemon, the simulator and the
lab. Pure: no sockets, no logging; what keepalived would log comes back as ``notes``. The one
host fact, the advert source address, is passed in.

keepalived 2.2.7 rules applied here (vrrp.c vrrp_complete_instance(), vrrp_check_packet(),
sync_group_tracking_init(); vrrp_track.c alloc_track_script()):

* The model is complete (IPv6 forces VRRPv3, VRRPv3 has no authentication, a void
  nopreempt/preempt_delay cleared: :mod:`hagate.config.instance`, one home each, with its
  finding); the mapping takes its values as they are.
* The instance's own interface is always tracked with weight 0 (FAULT while it is down); a
  ``track_interface`` naming it is ignored.
* A member of a vrrp_sync_group loses its weighted track_scripts and tracks its interfaces
  with weight 0, unless the group has ``sync_group_tracking_weight`` (or the deprecated
  ``global_tracking``); the group's own track_script/track_interface entries are added to
  every member with their weights (weight 0 if a member is the address owner); an item on
  both keeps the member's unweighted entry. The coupling of states is
  :mod:`hagate.vrrp.syncgroup`; ``InstanceMap.sync_group`` names the group.
* ``init_fail`` has no effect: tracking a script resets its init state, so every script
  starts with no result, contributing no weight (weight 0: the instance waits for it).
* ``unicast_fault_no_peer`` with no peer left: the instance stays in FAULT (a weight-0
  item of kind CONFIG that never recovers); without it, unicast keywords and no peer
  mean multicast (keepalived's deprecated fallback).
* Multicast adverts go to ``mcast_dst_ip``, else the global vrrp_mcast_group4/6;
  ``unicast_ttl`` (unicast only) is the TTL/hop limit unicast adverts are sent with.
* ``accept`` mode: default on, except with vrrp_strict (RFC 9568 §6.1 Accept_Mode false)
  unless the address owner; strict VRRPv2 clears it (RFC 3768 has none). With accept off a
  non-owner master drops traffic to and from its VIPs with keepalived's nftables tables
  (the daemon: hagate.daemon.firewall).
* A received advert whose address list differs from ours is dropped (``AddressCheck.STRICT``;
  keepalived 2.2.7 has no log-and-accept mode, and hagate does not support
  ``skip_check_adv_addr``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from hagate.config import model as cfg
from hagate.vrrp.advert import AuthType, IPAddress
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.receive import AddressCheck, ReceiveParams, UnicastPeer
from hagate.vrrp.state import State
from hagate.vrrp.tracking import PRIORITY_OWNER, TrackedItem

__all__ = [
    "ADDRESS_CHECK",
    "BridgeError",
    "InstanceMap",
    "ItemNamer",
    "TrackKind",
    "Tracked",
    "bare_name",
    "map_instance",
    "prefixed_name",
]

# keepalived 2.2.7 vrrp_check_packet(): a different VIP count or a missing VIP drops the advert.
ADDRESS_CHECK = AddressCheck.STRICT

_AUTH = {
    cfg.AuthType.NONE: AuthType.NONE,
    cfg.AuthType.PASS: AuthType.PASS,
    cfg.AuthType.AH: AuthType.AH,
}


class BridgeError(ValueError):
    """The instance cannot be run (the message names the instance and why)."""


class TrackKind(StrEnum):
    SCRIPT = "script"
    INTERFACE = "interface"
    CONFIG = "config"  # a configuration fault: down for good (keepalived num_config_faults)
    PROCESS = "process"  # vrrp_track_process: up while its quorum of processes runs
    FILE = "file"  # track_file: value x weight into the priority; weight 0: FAULT if non-zero


ItemNamer = Callable[[TrackKind, str], str]


def prefixed_name(kind: TrackKind, name: str) -> str:
    """``script NAME`` / ``interface NAME``: never two items with one name."""
    return f"{kind} {name}"


def bare_name(kind: TrackKind, name: str) -> str:
    """The configured name alone (the simulator's scenario names)."""
    return name


@dataclass(frozen=True, slots=True)
class Tracked:
    """One tracked script or interface with its weight, reverse and start status in force."""

    kind: TrackKind
    name: str  # the vrrp_script or interface name
    item: TrackedItem  # item.name is the core's name for it
    origin: str  # "instance", "own interface" or "vrrp_sync_group NAME"


@dataclass(frozen=True, slots=True)
class InstanceMap:
    """One vrrp_instance as the core sees it."""

    name: str
    interface: str | None
    family: int  # 4 or 6
    source: IPAddress
    destinations: tuple[IPAddress, ...]
    multicast: bool
    params: VrrpParams
    receive: ReceiveParams
    tracked: tuple[Tracked, ...]
    notes: tuple[str, ...] = ()
    sync_group: str | None = None  # the vrrp_sync_group it belongs to (one that exists)
    unicast_ttl: int = 255  # TTL / hop limit of unicast adverts
    accept: bool = True  # Accept_Mode (RFC 9568 §6.1): the master answers for its VIPs

    @property
    def scripts(self) -> tuple[Tracked, ...]:
        return tuple(t for t in self.tracked if t.kind is TrackKind.SCRIPT)

    @property
    def probes(self) -> tuple[Tracked, ...]:
        """track_process / track_file items (the daemon polls them like scripts)."""
        return tuple(t for t in self.tracked if t.kind in (TrackKind.PROCESS, TrackKind.FILE))

    @property
    def interfaces(self) -> tuple[Tracked, ...]:
        return tuple(t for t in self.tracked if t.kind is TrackKind.INTERFACE)


def map_instance(
    config: cfg.Config,
    inst: cfg.VrrpInstance,
    source: IPAddress,
    *,
    disabled_scripts: frozenset[str] = frozenset(),
    item_name: ItemNamer = prefixed_name,
) -> InstanceMap:
    """Map ``inst`` of ``config``, sending from ``source``; raises :class:`BridgeError`.

    ``disabled_scripts``: vrrp_scripts keepalived disabled at start (tracked by nobody).
    """
    notes: list[str] = []
    label = f"({inst.name})"
    family = inst.family
    version = inst.version
    auth = _AUTH[inst.auth_type]
    if auth is AuthType.AH:
        raise BridgeError(f"{label} auth_type AH is not supported; use PASS or none")
    g = config.global_defs
    vips = tuple(v.address for v in inst.virtual_ipaddresses)
    tracked = _tracking(config, inst, disabled_scripts, item_name, notes)
    if inst.unicast_fault_no_peer and not inst.unicast_peers:
        notes.append(f"{label} Cannot use unicast without any peers - going to fault state")
        fault = TrackedItem(item_name(TrackKind.CONFIG, "no unicast peer"), initially_ok=False)
        tracked.append(Tracked(TrackKind.CONFIG, "no unicast peer", fault, "instance"))
    accept = _accept(inst, version, g.vrrp_strict, notes)
    try:
        params = VrrpParams(
            vrid=inst.virtual_router_id,
            primary_address=source,
            vips=vips,
            version=version,
            priority=inst.priority,
            advert_int=inst.advert_int,
            start_state=State.MASTER if inst.state is cfg.State.MASTER else State.BACKUP,
            nopreempt=inst.nopreempt,
            preempt_delay=inst.preempt_delay,
            tracked=tuple(t.item for t in tracked),
            garp_master_delay=inst.garp_master_delay,
            garp_master_repeat=inst.garp_master_repeat,
            garp_master_refresh=inst.garp_master_refresh,
            garp_master_refresh_repeat=inst.garp_master_refresh_repeat,
            garp_lower_prio_delay=inst.garp_lower_prio_delay,
            garp_lower_prio_repeat=inst.garp_lower_prio_repeat,
            lower_prio_no_advert=inst.lower_prio_no_advert,
            higher_prio_send_advert=inst.higher_prio_send_advert,
            down_timer_adverts=inst.down_timer_adverts,
            startup_delay=g.vrrp_startup_delay,
            auth_type=auth,
            auth_data=inst.auth_data if auth is AuthType.PASS else b"",
            strict_rfc=g.vrrp_strict,
            name=inst.name,
        )
    except ValueError as exc:
        raise BridgeError(str(exc)) from None
    try:
        receive = ReceiveParams(
            version=version,
            vrid=inst.virtual_router_id,
            advert_int_cs=params.advert_int_cs,
            vips=vips,
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
            address_check=ADDRESS_CHECK,
        )
    except ValueError as exc:
        raise BridgeError(f"{label} {exc}") from None
    notes.extend(f"{label} {w}" for w in params.warnings())
    if inst.unicast_peers:
        destinations: tuple[IPAddress, ...] = tuple(p.address for p in inst.unicast_peers)
    elif inst.mcast_dst_ip is not None:
        destinations = (inst.mcast_dst_ip,)
    else:
        destinations = (g.vrrp_mcast_group6 if family == 6 else g.vrrp_mcast_group4,)
    return InstanceMap(
        name=inst.name,
        interface=inst.interface,
        family=family,
        source=source,
        destinations=destinations,
        multicast=not inst.unicast_peers,
        params=params,
        receive=receive,
        tracked=tuple(tracked),
        notes=tuple(notes),
        sync_group=group.name if (group := config.sync_group(inst.sync_group)) else None,
        unicast_ttl=255 if inst.unicast_ttl is None else inst.unicast_ttl,
        accept=accept,
    )


def _accept(inst: cfg.VrrpInstance, version: int, strict: bool, notes: list[str]) -> bool:
    """keepalived vrrp_complete_instance(): Accept_Mode in force."""
    label = f"({inst.name})"
    owner = inst.priority == PRIORITY_OWNER
    accept = inst.accept if inst.accept is not None else (owner or not strict)
    if accept and not owner and strict and version == 2:
        notes.append(f"{label} accept mode for VRRP version 2 does not comply with RFC3768 - off")
        accept = False
    return accept


@dataclass(slots=True)
class _Entry:
    kind: TrackKind
    name: str
    weight: int
    reverse: bool
    origin: str


def _tracking(
    config: cfg.Config,
    inst: cfg.VrrpInstance,
    disabled: frozenset[str],
    item_name: ItemNamer,
    notes: list[str],
) -> list[Tracked]:
    label = f"({inst.name})"
    group = config.sync_group(inst.sync_group)
    strip = group is not None and not group.tracking_weight  # weights void in the group
    entries: dict[tuple[TrackKind, str], _Entry] = {}

    def add(entry: _Entry) -> None:
        key = (entry.kind, entry.name)
        old = entries.get(key)
        if old is None:
            entries[key] = entry
            return
        if old.origin == entry.origin:
            notes.append(f"{label} duplicate track_{entry.kind} {entry.name}: ignored")
            return
        notes.append(
            f"{label} track_{entry.kind} {entry.name} is on the instance and on "
            f"{entry.origin}; remove one"
        )
        # keepalived add_vrrp_to_interface()/add_vrrp_to_track_script(): the sync group's
        # weight wins unless the instance's entry is unweighted.
        if old.weight:
            old.weight, old.reverse = entry.weight, entry.reverse

    # vrrp_complete_instance(): own interface, then track_interface, then track_script.
    if inst.interface:
        add(_Entry(TrackKind.INTERFACE, inst.interface, 0, False, "own interface"))
    for ti in inst.track_interfaces:
        if ti.name == inst.interface:
            notes.append(f"{label} track_interface {ti.name} is its own interface: ignored")
            continue
        weight = ti.weight
        if strip and group is not None and weight:
            notes.append(
                f"{label} track_interface {ti.name}: weight ignored in vrrp_sync_group "
                f"{group.name} (tracked with weight 0)"
            )
            weight = 0
        add(_Entry(TrackKind.INTERFACE, ti.name, weight, ti.reverse, "instance"))
    tracks = [(TrackKind.SCRIPT, ts) for ts in inst.track_scripts]
    tracks += [(TrackKind.PROCESS, ts) for ts in inst.track_processes]
    tracks += [(TrackKind.FILE, ts) for ts in inst.track_files]
    for kind, ts in tracks:
        entry = _track_entry(config, kind, ts, "instance", disabled, label, notes)
        if entry is None:
            continue
        if strip and group is not None and entry.weight:
            notes.append(
                f"{label} track_{kind} {ts.name} with a weight is ignored in "
                f"vrrp_sync_group {group.name} (keepalived)"
            )
            continue
        add(entry)
    if group is not None:
        origin = f"vrrp_sync_group {group.name}"
        owner = any(
            m.priority == PRIORITY_OWNER
            for m in config.vrrp_instances
            if m.sync_group == group.name
        )
        group_entries: list[_Entry] = [
            _Entry(TrackKind.INTERFACE, ti.name, ti.weight, ti.reverse, origin)
            for ti in group.track_interfaces
        ]
        group_tracks = [(TrackKind.SCRIPT, ts) for ts in group.track_scripts]
        group_tracks += [(TrackKind.PROCESS, ts) for ts in group.track_processes]
        group_tracks += [(TrackKind.FILE, ts) for ts in group.track_files]
        for kind, ts in group_tracks:
            entry = _track_entry(config, kind, ts, origin, disabled, label, notes)
            if entry is not None:
                group_entries.append(entry)
        for entry in group_entries:
            if owner and entry.weight:
                notes.append(
                    f"{label} {origin} track_{entry.kind} {entry.name}: weight cleared, a "
                    f"member has priority {PRIORITY_OWNER}"
                )
                entry.weight = 0
            add(entry)
    if inst.priority == PRIORITY_OWNER and any(e.weight for e in entries.values()):
        notes.append(f"{label} priority {PRIORITY_OWNER}: tracking weights are ignored")
    return _items(entries.values(), item_name, label, notes)


def _track_entry(
    config: cfg.Config,
    kind: TrackKind,
    ts: cfg.TrackScript,
    origin: str,
    disabled: frozenset[str],
    label: str,
    notes: list[str],
) -> _Entry | None:
    """One track_script / track_process / track_file reference, resolved (None: ignored)."""
    if kind is TrackKind.SCRIPT:
        return _script_entry(config, ts, origin, disabled, label, notes)
    found: cfg.VrrpTrackProcess | cfg.VrrpTrackFile | None
    found = (
        config.track_process(ts.name) if kind is TrackKind.PROCESS else config.track_file(ts.name)
    )
    if found is None:
        block = "vrrp_track_process" if kind is TrackKind.PROCESS else "track_file"
        notes.append(f"{label} track_{kind} {ts.name}: no such {block}; ignored")
        return None
    weight = found.weight if ts.weight is None else ts.weight
    reverse = found.reverse if ts.weight is None else ts.reverse
    return _Entry(kind, ts.name, weight, reverse, origin)


def _script_entry(
    config: cfg.Config,
    ts: cfg.TrackScript,
    origin: str,
    disabled: frozenset[str],
    label: str,
    notes: list[str],
) -> _Entry | None:
    script = config.script(ts.name)
    if script is None:
        notes.append(f"{label} track_script {ts.name}: no such vrrp_script; ignored")
        return None
    if ts.name in disabled:
        return None
    if script.init_fail:
        notes.append(
            f"{label} vrrp_script {ts.name}: init_fail has no effect in keepalived 2.2.7 "
            "(tracking resets it); the script starts with no result"
        )
    # keepalived alloc_track_script(): the vrrp_script's weight/reverse unless overridden.
    weight = script.weight if ts.weight is None else ts.weight
    reverse = script.reverse if ts.weight is None else ts.reverse
    return _Entry(TrackKind.SCRIPT, ts.name, weight, reverse, origin)


def _items(
    entries: Iterable[_Entry], item_name: ItemNamer, label: str, notes: list[str]
) -> list[Tracked]:
    out: list[Tracked] = []
    used: set[str] = set()
    ordered = sorted(entries, key=lambda e: e.kind is not TrackKind.INTERFACE)  # interfaces first
    for e in ordered:
        name = item_name(e.kind, e.name)
        if name in used:
            notes.append(f"{label} track_{e.kind} {e.name}: an interface has that name; ignored")
            continue
        used.add(name)
        if e.kind in (TrackKind.SCRIPT, TrackKind.PROCESS, TrackKind.FILE):
            # No result yet (keepalived SCRIPT_INIT_STATE_INIT): no weight in force; a
            # weight-0 script holds the instance until its first result (the driver waits).
            start_ok = TrackedItem(name, e.weight, e.reverse).neutral_ok
        else:
            start_ok = True  # the driver sets the link's real state before starting
        # a weighted track_file has a level (its number), not a status: keepalived
        # track_file.c adds number x weight; its level starts at 0 until the first read
        scaled = e.kind is TrackKind.FILE and e.weight != 0
        item = TrackedItem(name, e.weight, e.reverse, initially_ok=start_ok, scaled=scaled)
        out.append(Tracked(e.kind, e.name, item, e.origin))
    return out
