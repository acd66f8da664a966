"""The typed model of a keepalived.conf, every keepalived default filled in.

Produced by :func:`hagate.config.load`; consumed by the daemon and ``hagate simulate``.
It does not depend on the VRRP core. Times are float seconds, addresses ``ipaddress`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
)
from pathlib import Path

from hagate.config import defaults as D
from hagate.config.lexer import quoted_words

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def command_path(command: str) -> str:
    """The program a script line runs: its first word, split as keepalived splits it."""
    words = quoted_words(command)
    return words[0] if words else ""


class State(Enum):
    """Initial state of a vrrp_instance (keepalived ``state``)."""

    MASTER = "MASTER"
    BACKUP = "BACKUP"


class AuthType(Enum):
    """VRRPv2 authentication (RFC 2338 §5.3.6; removed by RFC 3768, kept by keepalived)."""

    NONE = "NONE"
    PASS = "PASS"
    AH = "AH"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a statement came from: file and line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Location("", 0)


@dataclass(frozen=True, slots=True)
class VirtualIp:
    """One virtual_ipaddress entry: ``ADDR[/PREFIX] [dev X] [label Y] [brd Z] [scope S]``."""

    address: IPAddress
    prefixlen: int
    dev: str | None = None
    label: str | None = None
    brd: IPv4Address | None = None
    scope: str | None = None
    where: Location = NOWHERE

    @property
    def interface(self) -> IPv4Interface | IPv6Interface:
        return ip_interface(f"{self.address}/{self.prefixlen}")

    def __str__(self) -> str:
        text = f"{self.address}/{self.prefixlen}"
        for name in ("dev", "label", "brd", "scope"):
            value = getattr(self, name)
            if value is not None:
                text += f" {name} {value}"
        return text


class RouteType(Enum):
    """The route types hagate installs (rtnetlink RTN_*), keepalived's names."""

    UNICAST = 1
    BLACKHOLE = 6
    UNREACHABLE = 7
    PROHIBIT = 8
    THROW = 9


@dataclass(frozen=True, slots=True)
class VirtualRoute:
    """One virtual_routes entry (keepalived vrrp_iproute.c alloc_route): installed while
    master. keepalived's defaults: table main, scope universe (also without ``via``),
    protocol ``keepalived`` (18) unless ``no_track``."""

    dst: IPNetwork
    type: RouteType = RouteType.UNICAST
    via: IPAddress | None = None
    dev: str | None = None
    src: IPAddress | None = None
    metric: int | None = None
    table: int = 254
    scope: str | None = None  # None: universe
    track: bool = True  # False with no_track
    where: Location = NOWHERE

    def __str__(self) -> str:
        text = "" if self.type is RouteType.UNICAST else f"{self.type.name.lower()} "
        text += str(self.dst)
        for name in ("via", "dev", "src", "metric", "scope"):
            value = getattr(self, name)
            if value is not None:
                text += f" {name} {value}"
        return text + (f" table {self.table}" if self.table != 254 else "")


@dataclass(frozen=True, slots=True)
class VirtualRule:
    """One virtual_rules entry (keepalived vrrp_iprule.c): a policy rule held while master."""

    family: int  # 4 or 6
    table: int
    priority: int
    src: IPNetwork | None = None  # from
    dst: IPNetwork | None = None  # to
    iif: str | None = None
    oif: str | None = None
    invert: bool = False  # not
    track: bool = True  # False with no_track (then no protocol keepalived)
    where: Location = NOWHERE

    def __str__(self) -> str:
        text = "not " if self.invert else ""
        text += f"from {self.src or 'all'}"
        if self.dst is not None:
            text += f" to {self.dst}"
        for name in ("iif", "oif"):
            value = getattr(self, name)
            if value is not None:
                text += f" {name} {value}"
        return text + f" priority {self.priority} table {self.table}"


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    """A unicast_peer entry: the address and its optional min_ttl / max_ttl."""

    address: IPAddress
    min_ttl: int | None = None
    max_ttl: int | None = None


@dataclass(frozen=True, slots=True)
class TrackScript:
    """A track_script reference; ``weight`` None means the vrrp_script's own weight."""

    name: str
    weight: int | None = None
    reverse: bool = False
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class TrackInterface:
    """A track_interface entry; weight 0 means the instance goes to FAULT when it is down."""

    name: str
    weight: int = 0
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class NotifyScript:
    """notify_master/backup/fault/stop or notify: command line and optional user/group."""

    command: str
    user: str | None = None
    group: str | None = None
    where: Location = NOWHERE

    @property
    def path(self) -> str:
        return command_path(self.command)


@dataclass(frozen=True, slots=True)
class NotifyFifo:
    """notify_fifo / vrrp_notify_fifo: ``FIFO_NAME [username [groupname]]``."""

    path: str
    user: str | None = None
    group: str | None = None
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class VrrpScript:
    """A vrrp_script block: the command, how often it runs and what it changes."""

    name: str
    script: str
    interval: float = D.SCRIPT_INTERVAL
    timeout: float = D.SCRIPT_INTERVAL  # keepalived: defaults to interval
    weight: int = D.SCRIPT_WEIGHT
    reverse: bool = False
    rise: int = D.SCRIPT_RISE
    fall: int = D.SCRIPT_FALL
    user: str | None = None
    group: str | None = None
    init_fail: bool = False
    where: Location = NOWHERE

    @property
    def path(self) -> str:
        return command_path(self.script)


@dataclass(frozen=True, slots=True)
class VrrpTrackProcess:
    """vrrp_track_process: up while quorum..quorum_max matching processes run."""

    name: str
    process: str  # matched against the process name (comm), or argv[0] with full_command
    params: tuple[str, ...] = ()
    param_match: str | None = None  # None, "exact", "initial" or "partial"
    full_command: bool = False
    quorum: int = 1
    quorum_max: int | None = None  # None: no maximum
    weight: int = 0
    reverse: bool = False
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class VrrpTrackFile:
    """track_file (vrrp_track_file): a number in a file; with weight 0, non-zero = FAULT."""

    name: str
    file: str
    weight: int = 1  # keepalived's default
    reverse: bool = False
    init_file: int | None = None  # init_file [VALUE]: written at start if missing
    overwrite: bool = False
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class GlobalDefs:
    """The global_defs block (the keys hagate reads)."""

    router_id: str | None = None
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    vrrp_version: int = D.VERSION
    vrrp_garp_master_delay: float = D.GARP_MASTER_DELAY
    vrrp_garp_master_repeat: int = D.GARP_MASTER_REPEAT
    vrrp_garp_master_refresh: float = D.GARP_MASTER_REFRESH
    vrrp_garp_master_refresh_repeat: int = D.GARP_MASTER_REFRESH_REPEAT
    vrrp_garp_lower_prio_delay: float = D.GARP_MASTER_DELAY  # default: master delay
    vrrp_garp_lower_prio_repeat: int = D.GARP_MASTER_REPEAT  # default: master repeat
    vrrp_garp_interval: float = D.GARP_INTERVAL
    vrrp_gna_interval: float = D.GNA_INTERVAL
    vrrp_check_unicast_src: bool = False
    vrrp_down_timer_adverts: int = D.DOWN_TIMER_ADVERTS
    vrrp_v3_checksum_as_v2: bool = False
    vrrp_strict: bool = False
    vrrp_mcast_group4: IPv4Address = D.MCAST_GROUP4
    vrrp_mcast_group6: IPv6Address = D.MCAST_GROUP6
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_connect_timeout: int = D.SMTP_CONNECT_TIMEOUT
    smtp_alert: bool = False
    notify_fifo: NotifyFifo | None = None
    notify_fifo_script: NotifyScript | None = None
    vrrp_notify_fifo: NotifyFifo | None = None
    vrrp_notify_fifo_script: NotifyScript | None = None
    vrrp_notify_priority_changes: bool = False
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False
    vrrp_startup_delay: float = 0.0
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class VrrpInstance:
    """A vrrp_instance block, with keepalived 2.2.7's defaults."""

    name: str
    virtual_router_id: int
    state: State = State.BACKUP
    interface: str | None = None
    priority: int = D.PRIORITY
    advert_int: float = D.ADVERT_INT
    version: int = D.VERSION
    mcast_src_ip: IPAddress | None = None
    unicast_src_ip: IPAddress | None = None
    unicast_peers: tuple[UnicastPeer, ...] = ()
    check_unicast_src: bool = False
    auth_type: AuthType = AuthType.NONE
    auth_pass: str = ""
    virtual_ipaddresses: tuple[VirtualIp, ...] = ()
    virtual_ipaddresses_excluded: tuple[VirtualIp, ...] = ()
    nopreempt: bool = False
    preempt_delay: float = 0.0
    track_scripts: tuple[TrackScript, ...] = ()
    track_interfaces: tuple[TrackInterface, ...] = ()
    track_processes: tuple[TrackScript, ...] = ()  # same shape: NAME [weight N [reverse]]
    track_files: tuple[TrackScript, ...] = ()
    garp_master_delay: float = D.GARP_MASTER_DELAY
    garp_master_repeat: int = D.GARP_MASTER_REPEAT
    garp_master_refresh: float = D.GARP_MASTER_REFRESH
    garp_master_refresh_repeat: int = D.GARP_MASTER_REFRESH_REPEAT
    garp_lower_prio_delay: float = D.GARP_MASTER_DELAY
    garp_lower_prio_repeat: int = D.GARP_MASTER_REPEAT
    down_timer_adverts: int = D.DOWN_TIMER_ADVERTS
    v3_checksum_as_v2: bool = False
    notify_master: NotifyScript | None = None
    notify_backup: NotifyScript | None = None
    notify_fault: NotifyScript | None = None
    notify_stop: NotifyScript | None = None
    notify: NotifyScript | None = None
    notify_master_rx_lower_pri: NotifyScript | None = None
    notify_deleted: bool = False  # removal at reload notified as DELETED, not FAULT
    notify_deleted_script: NotifyScript | None = None
    notify_priority_changes: bool | None = None  # None: the sync group's, else global
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    mcast_dst_ip: IPAddress | None = None  # None: global vrrp_mcast_group4/6
    unicast_ttl: int | None = None  # TTL/hop limit of unicast adverts (None: 255)
    unicast_configured: bool = False  # a unicast keyword was given (keepalived's flag)
    unicast_fault_no_peer: bool = False  # unicast keywords but no peer: FAULT, not multicast
    use_vmac: str | None = None  # macvlan name ("": keepalived's vrrp.VRID); None: no VMAC
    vmac_xmit_base: bool = False  # with use_vmac: adverts on the base interface
    accept: bool | None = None  # accept / no_accept; None: keepalived's default
    virtual_routes: tuple[VirtualRoute, ...] = ()  # installed while master
    virtual_rules: tuple[VirtualRule, ...] = ()
    smtp_alert: bool = False
    sync_group: str | None = None
    where: Location = NOWHERE

    @property
    def family(self) -> int:
        """4 or 6, from the virtual addresses (IPv6 VIPs make an IPv6, VRRPv3 instance)."""
        for vip in self.virtual_ipaddresses:
            return vip.address.version
        src = self.unicast_src_ip or self.mcast_src_ip
        if src is not None:
            return src.version
        return self.unicast_peers[0].address.version if self.unicast_peers else 4

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def address_owner(self) -> bool:
        return self.priority == D.PRIORITY_OWNER

    @property
    def auth_data(self) -> bytes:
        """The 8-octet VRRPv2 authentication field for PASS (NUL padded), else empty."""
        if self.auth_type is not AuthType.PASS:
            return b""
        return self.auth_pass.encode()[: D.AUTH_PASS_LEN].ljust(D.AUTH_PASS_LEN, b"\0")

    @property
    def skew_time(self) -> float:
        """RFC 3768 §6.1 (v2): (256 - Priority) / 256; RFC 9568 §6.1 (v3) scales by the
        advertisement interval."""
        if self.version == 3:
            return ((256 - self.priority) * self.advert_int) / 256
        return (256 - self.priority) / 256

    @property
    def master_down_interval(self) -> float:
        """RFC 3768 §6.1 / RFC 9568 §6.1: 3 * Advertisement_Interval + Skew_time
        (keepalived's down_timer_adverts replaces the 3)."""
        return self.down_timer_adverts * self.advert_int + self.skew_time


@dataclass(frozen=True, slots=True)
class VrrpSyncGroup:
    """A vrrp_sync_group block: instances that change state together."""

    name: str
    group: tuple[str, ...] = ()
    track_scripts: tuple[TrackScript, ...] = ()
    track_interfaces: tuple[TrackInterface, ...] = ()
    track_processes: tuple[TrackScript, ...] = ()
    track_files: tuple[TrackScript, ...] = ()
    notify_master: NotifyScript | None = None
    notify_backup: NotifyScript | None = None
    notify_fault: NotifyScript | None = None
    notify_stop: NotifyScript | None = None
    notify: NotifyScript | None = None
    notify_priority_changes: bool | None = None
    # sync_group_tracking_weight (or the deprecated global_tracking): members keep their
    # weighted tracking instead of keepalived's weight 0 for every member.
    tracking_weight: bool = False
    smtp_alert: bool = False
    where: Location = NOWHERE


@dataclass(frozen=True, slots=True)
class Config:
    """One node's configuration: the main file and everything it includes."""

    path: Path
    files: tuple[Path, ...] = ()
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_scripts: tuple[VrrpScript, ...] = ()
    vrrp_instances: tuple[VrrpInstance, ...] = ()
    vrrp_sync_groups: tuple[VrrpSyncGroup, ...] = ()
    vrrp_track_processes: tuple[VrrpTrackProcess, ...] = ()
    vrrp_track_files: tuple[VrrpTrackFile, ...] = ()

    def script(self, name: str) -> VrrpScript | None:
        return next((s for s in self.vrrp_scripts if s.name == name), None)

    def track_process(self, name: str) -> VrrpTrackProcess | None:
        return next((p for p in self.vrrp_track_processes if p.name == name), None)

    def track_file(self, name: str) -> VrrpTrackFile | None:
        return next((f for f in self.vrrp_track_files if f.name == name), None)

    def instance(self, name: str) -> VrrpInstance | None:
        return next((i for i in self.vrrp_instances if i.name == name), None)

    def sync_group(self, name: str | None) -> VrrpSyncGroup | None:
        return next((g for g in self.vrrp_sync_groups if g.name == name), None)

    def notify_priority_changes(self, inst: VrrpInstance) -> bool:
        """keepalived: the instance's setting, else its sync group's, else global_defs'."""
        if inst.notify_priority_changes is not None:
            return inst.notify_priority_changes
        group = self.sync_group(inst.sync_group)
        if group is not None and group.notify_priority_changes is not None:
            return group.notify_priority_changes
        return self.global_defs.vrrp_notify_priority_changes
