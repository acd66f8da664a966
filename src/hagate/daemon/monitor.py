"""keepalived's monitoring contract: the files its signals write, in keepalived 2.2.7's formats.

Existing tooling reads these (keepalived-exporter, Nagios/Zabbix checks, `cat` in a
runbook): SIGUSR1 writes ``keepalived.data`` (vrrp_print_data: the running instances and
scripts), SIGUSR2 ``keepalived.stats`` (vrrp_print_stats: counters per instance), and
``keepalived --signum=JSON`` (SIGRTMIN+2) ``keepalived.json`` (vrrp_print_json). keepalived
puts them in ``$TMPDIR`` (if absolute) else ``/tmp``; so do we, unless ``--tmp-dir`` says
otherwise (tests give each daemon its own). Each file is written whole to a temporary name
and renamed (a reader never sees half a file), mode 0600 as keepalived's umask 0177 makes it.

The Sockpool section lists keepalived's sockets as keepalived would have them (one per
interface, family and unicast source, multicast instances together), each with the fd of
hagate's one socket per interface and family that serves them all. What hagate has no
equivalent for (the Interfaces section's debounce and ARP bookkeeping, the global section's
hundred tunables) is left out rather than invented; every line that is
written has keepalived's wording and layout, so line parsers keyed on it work.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hagate.daemon.netlink import SCOPES, Vip
from hagate.daemon.scripts import ScriptStatus, resolve_command
from hagate.vrrp.advert import AuthType
from hagate.vrrp.state import State
from hagate.vrrp.tracking import PRIORITY_OWNER

if TYPE_CHECKING:
    from hagate.daemon.cmdline import ScriptCommand
    from hagate.daemon.runtime import InstanceRuntime
    from hagate.daemon.scripts import ScriptRunner
    from hagate.vrrp.params import VrrpParams

DATA_FILE = "keepalived.data"
STATS_FILE = "keepalived.stats"
JSON_FILE = "keepalived.json"
# keepalived: SIGJSON is SIGRTMIN + 2 (`keepalived --signum=JSON` prints it: 36 on glibc)
SIGJSON = int(signal.SIGRTMIN) + 2
SIGNUMS: dict[str, int] = {"RELOAD": signal.SIGHUP, "DATA": signal.SIGUSR1}
SIGNUMS |= {"STATS": signal.SIGUSR2, "STOP": signal.SIGTERM, "JSON": SIGJSON}
# vrrp_t.state numbers in keepalived.json (VRRP_STATE_INIT, _BACK, _MAST, _FAULT)
STATE_NUMBER = {State.INITIALIZE: 0, State.BACKUP: 1, State.MASTER: 2, State.FAULT: 3}
_STATE_NAME = {State.INITIALIZE: "INIT", State.STOP: "STOP"}
_SCOPE_NAME = {v: k for k, v in SCOPES.items()}
# discard reasons (hagate.vrrp.packet.DiscardReason values) -> keepalived's vrrp_stats
_STAT_OF_REASON = {
    "too_short": "packet_len_err",
    "length_mismatch": "packet_len_err",
    "bad_ip_header": "packet_len_err",
    "bad_ttl": "ip_ttl_err",
    "peer_ttl_out_of_range": "ip_ttl_err",
    "bad_type": "invalid_type_rcvd",
    "advert_interval_mismatch": "advert_interval_err",
    "address_list_mismatch": "addr_list_err",
    "invalid_auth_type": "invalid_authtype",
    "auth_type_mismatch": "authtype_mismatch",
    "auth_password_mismatch": "auth_failure",
}
STAT_FIELDS = (
    "advert_rcvd",
    "advert_sent",
    "become_master",
    "release_master",
    "packet_len_err",
    "advert_interval_err",
    "ip_ttl_err",
    "invalid_type_rcvd",
    "addr_list_err",
    "invalid_authtype",
    "authtype_mismatch",
    "auth_failure",
    "pri_zero_rcvd",
    "pri_zero_sent",
)


def default_tmp_dir(env: Mapping[str, str] = os.environ) -> Path:
    """keepalived's set_tmp_dir(): ``$TMPDIR`` if it is an absolute path, else /tmp."""
    value = env.get("TMPDIR", "")
    return Path(value) if value.startswith("/") else Path("/tmp")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def state_name(state: State) -> str:
    """keepalived's get_state_str(): INIT, BACKUP, MASTER, FAULT."""
    return _STATE_NAME.get(state, str(state))


def stats_of(rt: InstanceRuntime) -> dict[str, int]:
    """keepalived's vrrp_stats for one instance, from hagate's counters."""
    out = dict.fromkeys(STAT_FIELDS, 0)
    for reason, n in rt.discards.items():
        key = _STAT_OF_REASON.get(reason)
        if key is not None:
            out[key] += n
    out["advert_rcvd"] = rt.adverts_in
    out["advert_sent"] = rt.adverts_out
    out["become_master"] = rt.become_master
    out["release_master"] = rt.release_master
    out["pri_zero_rcvd"] = rt.pri_zero_rcvd
    out["pri_zero_sent"] = rt.pri_zero_sent
    return out


def stats_text(runtimes: Sequence[InstanceRuntime]) -> str:
    """keepalived.stats (vrrp_print_stats, built with VRRP auth)."""
    lines: list[str] = []
    for rt in runtimes:
        s = stats_of(rt)
        lines += [
            f"VRRP Instance: {rt.name}",
            "  Advertisements:",
            f"    Received: {s['advert_rcvd']}",
            f"    Sent: {s['advert_sent']}",
            f"  Became master: {s['become_master']}",
            f"  Released master: {s['release_master']}",
            "  Packet Errors:",
            f"    Length: {s['packet_len_err']}",
            f"    TTL: {s['ip_ttl_err']}",
            f"    Invalid Type: {s['invalid_type_rcvd']}",
            f"    Advertisement Interval: {s['advert_interval_err']}",
            f"    Address List: {s['addr_list_err']}",
            "  Authentication Errors:",
            f"    Invalid Type: {s['invalid_authtype']}",
            f"    Type Mismatch: {s['authtype_mismatch']}",
            f"    Failure: {s['auth_failure']}",
            "  Priority Zero:",
            f"    Received: {s['pri_zero_rcvd']}",
            f"    Sent: {s['pri_zero_sent']}",
        ]
    return "".join(line + "\n" for line in lines)


def cmd_str(cmd: ScriptCommand | tuple[str, ...] | None) -> str | None:
    """keepalived's cmd_str(): each word in single quotes, the program by its real path."""
    if cmd is None:
        return None
    argv = cmd if isinstance(cmd, tuple) else cmd.argv
    if not argv:
        return None
    found = resolve_command(argv[0])
    first = os.path.realpath(found) if found else argv[0]
    return " ".join(f"'{w}'" for w in (first, *argv[1:]))


def format_vip(vip: Vip, installed: bool) -> str:
    """keepalived's format_ipaddress() for a VIP as configured (``set`` while it is held)."""
    text = f"{vip.address}/{vip.prefixlen}"
    if vip.address.version == 4 and vip.brd is not None:
        text += f" brd {vip.brd}"
    text += f" dev {vip.dev} scope {_SCOPE_NAME.get(vip.scope, str(vip.scope))}"
    if vip.label:
        text += f" label {vip.label}"
    if vip.address.version == 6:
        text += " preferred_lft forever"
    return text + (" set" if installed else "")


@dataclass(frozen=True, slots=True)
class _Notify:
    label: str  # keepalived's dump_notify_script type
    json_key: str
    cmd: ScriptCommand | None


def _notifies(rt: InstanceRuntime) -> list[_Notify]:
    n = rt.plan.notify
    return [
        _Notify("Backup", "script_backup", n.backup),
        _Notify("Master", "script_master", n.master),
        _Notify("Fault", "script_fault", n.fault),
        _Notify("Stop", "script_stop", n.stop),
        _Notify("Deleted", "script_deleted", n.deleted),
        _Notify("Generic", "script", n.generic),
        _Notify("Master rx lower pri", "script_master_rx_lower_pri", n.master_rx_lower_pri),
    ]


def _installed(rt: InstanceRuntime) -> bool:
    return rt.machine.state is State.MASTER


def _track_scripts(rt: InstanceRuntime) -> list[tuple[str, int]]:
    """(script, weight) as keepalived lists them: an address owner (priority 255) drops
    every tracked script with a weight (only weight-0 ones, which mean FAULT, remain)."""
    owner = rt.plan.params.priority == PRIORITY_OWNER
    out = []
    for item, spec in rt.plan.scripts:
        weight = rt.machine.tracker.item(item).weight
        if not (owner and weight):
            out.append((spec.name, weight))
    return out


def _num(x: float) -> float | int:
    """keepalived's JSON writer prints 5, not 5.0."""
    return int(x) if float(x).is_integer() else x


def json_text(runtimes: Sequence[InstanceRuntime]) -> str:
    """keepalived.json (vrrp_print_json): one object per instance, ``data`` and ``stats``."""
    out = []
    for rt in runtimes:
        p, m, c = rt.plan.params, rt.machine, rt.plan.config
        data: dict[str, object] = {
            "iname": rt.name,
            "dont_track_primary": 0,
            "skip_check_adv_addr": 0,
            "strict_mode": int(p.strict_rfc),
            "vmac_ifname": getattr(rt.plan, "vmac_ifname", None) or "",
            "ifp_ifname": rt.plan.interface,
            "master_priority": m.master_priority if m.state is State.BACKUP else 0,
            "last_transition": float(f"{rt.last.at:.6f}") if rt.last else 0.0,
            "garp_delay": _num(p.garp_master_delay),
            "garp_refresh": int(p.garp_master_refresh),
            "garp_rep": p.garp_master_repeat,
            "garp_refresh_rep": p.garp_master_refresh_repeat,
            "garp_lower_prio_delay": int(
                p.garp_master_delay if p.garp_lower_prio_delay is None else p.garp_lower_prio_delay
            ),
            "garp_lower_prio_rep": (
                p.garp_master_repeat
                if p.garp_lower_prio_repeat is None
                else p.garp_lower_prio_repeat
            ),
            "lower_prio_no_advert": int(p.lower_prio_no_advert),
            "higher_prio_send_advert": int(p.higher_prio_send_advert),
            "vrid": p.vrid,
            "base_priority": m.base_priority,
            "effective_priority": m.effective_priority,
            "vipset": _installed(rt),
            "promote_secondaries": False,
            "adver_int": _num(p.advert_int),
            "master_adver_int": _num(m.master_adver_int_cs / 100),
            "accept": 1,
            "nopreempt": p.nopreempt,
            "preempt_delay": int(p.preempt_delay),
            "state": STATE_NUMBER.get(m.state, 0),
            "wantstate": STATE_NUMBER.get(m.state, 0),
            "version": p.version,
            "smtp_alert": c.smtp_alert,
            "notify_deleted": rt.plan.notify.notify_deleted,
        }
        for n in _notifies(rt):
            text = cmd_str(n.cmd)
            if text is not None:
                data[n.json_key] = text
        installed = _installed(rt)
        if rt.plan.vips:
            data["vips"] = [format_vip(v, installed) for v in rt.plan.vips]
        if rt.plan.excluded:
            data["evips"] = [format_vip(v, installed) for v in rt.plan.excluded]
        if c.track_interfaces:  # configured ones (the instance's own is implicit)
            data["track_ifp"] = [t.name for t in c.track_interfaces]
        tracked = {name for name, _w in _track_scripts(rt)}
        if tracked:
            data["track_script"] = [
                cmd_str(spec.argv) or "" for _i, spec in rt.plan.scripts if spec.name in tracked
            ]
        data["auth_type"] = int(p.auth_type)
        if p.auth_type is not AuthType.NONE:
            data["auth_data"] = _password(p.auth_data)
        out.append({"data": data, "stats": stats_of(rt)})
    # keepalived's json_writer escapes '/' as '\/'; JSON readers take either
    return json.dumps(out, separators=(",", ":")).replace("/", "\\/")


def _lower_delay(p: VrrpParams) -> float:
    return p.garp_master_delay if p.garp_lower_prio_delay is None else p.garp_lower_prio_delay


def _lower_repeat(p: VrrpParams) -> int:
    return p.garp_master_repeat if p.garp_lower_prio_repeat is None else p.garp_lower_prio_repeat


def _password(auth_data: bytes) -> str:
    return auth_data.rstrip(b"\0").decode("latin-1")


def _ctime_us(at: float) -> str:
    """keepalived's ctime_us_r(): 'Wed Dec  2 03:03:35.804528 2026' (local time)."""
    whole = int(at)
    usec = round((at - whole) * 1e6) % 1_000_000
    t = time.localtime(whole)
    return (
        time.strftime("%a %b ", t)
        + f"{t.tm_mday:2d} "
        + time.strftime("%H:%M:%S", t)
        + (f".{usec:06d} {t.tm_year}")
    )


def _stamp(at: float) -> str:
    whole = int(at)
    return f"{whole}.{round((at - whole) * 1e6) % 1_000_000:06d} ({_ctime_us(at)})"


def _instance_lines(rt: InstanceRuntime, now_wall: float, now_loop: float) -> list[str]:
    p, m, c, plan = rt.plan.params, rt.machine, rt.plan.config, rt.plan
    lines = [f" VRRP Instance = {rt.name}", f"   VRRP Version = {p.version}"]
    if plan.sync_group:
        lines.append(f"   Sync group = {plan.sync_group}")
    if plan.family == 6:
        lines.append("   Using Native IPv6")
    lines.append(f"   State = {state_name(m.state)}")
    if m.state is State.BACKUP:
        master = m.master_address if m.master_address is not None else "[0.0.0.0]:0"
        lines.append(f"   Master router = {master}")
        lines.append(f"   Master priority = {m.master_priority}")
        if p.version == 3:
            lines.append(f"   Master advert int = {m.master_adver_int_cs / 100:.2f} sec")
    if not plan.multicast:
        lines += ["   Flags:", "     Using unicast"]
    else:
        lines.append("   Flags: none")
    lines.append(f"   Wantstate = {state_name(m.state)}")
    lines.append("   Number of config faults = 0")
    faults = len(m.tracker.faulted())
    lines.append(f"   Number of interface and track script faults = {faults}")
    lines.append(f"   Number of track scripts init = {len(rt.waiting)}")
    if rt.last is not None:
        lines.append(f"   Last transition = {_stamp(rt.last.at)}")
    timer = m.get_timer()
    if timer is None:
        lines.append("   Read timeout = DISABLED")
    else:
        lines.append(f"   Read timeout = {_stamp(now_wall + max(0.0, timer - now_loop))}")
    lines.append(f"   Master down timer = {round(m.master_down_interval * 1e6)} usecs")
    lines.append(f"   Interface = {plan.interface}")
    from_config = c.unicast_src_ip is not None or c.mcast_src_ip is not None
    lines.append(f"   Using src_ip = {plan.source}{' (from configuration)' if from_config else ''}")
    if plan.multicast:
        group = plan.destinations[0] if plan.destinations else ""
        if plan.family == 4:
            lines.append(f"   Multicast address {group}")
        else:
            lines.append(f"   Multicast address {group}, ifindex {rt.sock.ifindex}")
    lower_delay = (
        p.garp_master_delay if p.garp_lower_prio_delay is None else p.garp_lower_prio_delay
    )
    lower_rep = (
        p.garp_master_repeat if p.garp_lower_prio_repeat is None else p.garp_lower_prio_repeat
    )
    lines += [
        f"   Gratuitous ARP delay = {int(p.garp_master_delay)}",
        f"   Gratuitous ARP repeat = {p.garp_master_repeat}",
        f"   Gratuitous ARP refresh = {int(p.garp_master_refresh)}",
        f"   Gratuitous ARP refresh repeat = {p.garp_master_refresh_repeat}",
        f"   Gratuitous ARP lower priority delay = {int(lower_delay)}",
        f"   Gratuitous ARP lower priority repeat = {lower_rep}",
        f"   Down timer adverts = {p.down_timer_adverts}",
        "   Send advert after receive lower priority advert = "
        + ("false" if p.lower_prio_no_advert else "true"),
        "   Send advert after receive higher priority advert = "
        + ("true" if p.higher_prio_send_advert else "false"),
        f"   Virtual Router ID = {p.vrid}",
        f"   Priority = {m.base_priority}",
        f"   Effective priority = {m.effective_priority}",
        f"   Total priority = {m.effective_priority}",
    ]
    if p.version == 2:
        lines.append(f"   Advert interval = {int(p.advert_int)} sec")
    else:
        lines.append(f"   Advert interval = {round(p.advert_int * 1000)} milli-sec")
    if m.state is State.BACKUP and p.version == 3:
        lines.append(f"   Master advert interval = {m.master_adver_int_cs * 10} milli-sec")
    lines.append("   Accept = enabled")
    lines.append(f"   Preempt = {'disabled' if p.nopreempt else 'enabled'}")
    if p.preempt_delay:
        lines.append(f"   Preempt delay = {p.preempt_delay:g} secs")
    lines.append("   Promote_secondaries = disabled")
    if p.auth_type is not AuthType.NONE:
        lines.append("   Authentication type = SIMPLE_PASSWORD")
        lines.append(f"   Password = {_password(p.auth_data)}")
    elif p.version == 2:
        lines.append("   Authentication type = none")
    installed = _installed(rt)
    if plan.vips:
        lines.append(f"   Virtual IP ({len(plan.vips)}):")
        lines += [f"     {format_vip(v, installed)}" for v in plan.vips]
    if plan.excluded:
        lines.append("   Virtual IP Excluded :")
        lines += [f"     {format_vip(v, installed)}" for v in plan.excluded]
    if not plan.multicast:
        lines.append("   Unicast TTL = 255")
        lines.append(f"   Check unicast src : {'yes' if c.check_unicast_src else 'no'}")
        lines.append("   Unicast Peer :")
        for peer in c.unicast_peers:
            lo = 0 if peer.min_ttl is None else peer.min_ttl
            hi = 255 if peer.max_ttl is None else peer.max_ttl
            lines.append(f"     {peer.address} min_ttl {lo} max_ttl {hi}")
        lines.append(
            f"   Unicast checksum compatibility = {'config' if c.v3_checksum_as_v2 else 'no'}"
        )
    lines.append(f"   fd_in {rt.sock.fileno()}, fd_out {rt.sock.fileno()}")
    if c.track_interfaces:
        lines.append("   Tracked interfaces :")
        for t in c.track_interfaces:
            lines.append(f"     {t.name} weight {t.weight}{' reverse' if t.reverse else ''}")
    if tracked := _track_scripts(rt):
        lines.append("   Tracked scripts :")
        lines += [f"     {name} weight {weight}" for name, weight in tracked]
    lines.append(f"   Using smtp notification = {'yes' if c.smtp_alert else 'no'}")
    lines.append(f"   Notify deleted = {'Deleted' if plan.notify.notify_deleted else 'Fault'}")
    for n in _notifies(rt):
        text = cmd_str(n.cmd)
        if text is not None:
            uid, gid = _ids(n.cmd)
            lines.append(f"   {n.label} state transition script = {text}, uid:gid {uid}:{gid}")
    changes = "true" if plan.notify.priority_changes else "false"
    lines.append(f"   Notify priority changes = {changes}")
    return lines


def _ids(cmd: ScriptCommand | None) -> tuple[int, int]:
    """uid:gid a script runs as (keepalived prints the resolved numbers)."""
    import grp
    import pwd

    uid = gid = 0
    if cmd is not None and cmd.user:
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(cmd.user)
            uid, gid = pw.pw_uid, pw.pw_gid
        if cmd.group:
            with contextlib.suppress(KeyError):
                gid = grp.getgrnam(cmd.group).gr_gid
    return uid, gid


def _script_lines(
    runner: ScriptRunner, trackers: Sequence[tuple[str, int]], running: bool
) -> list[str]:
    spec = runner.spec
    weight = f"{spec.weight}{' reverse' if spec.weight_reverse else ''}"
    timeout = int(spec.timeout) if spec.timeout else 0
    if runner.status is ScriptStatus.INIT:
        init = "INIT"
    elif runner.status is ScriptStatus.FAILED and spec.init_fail and runner.runs == 0:
        init = "INIT/FAILED"
    else:
        init = "unknown"
    good = runner.status is ScriptStatus.OK or (
        runner.status is ScriptStatus.INIT and runner.result >= spec.rise
    )
    lines = [
        f" VRRP Script = {spec.name}",
        f"   Command = {cmd_str(spec.argv)}",
        f"   Interval = {int(spec.interval)} sec",
        f"   Timeout = {timeout} sec",
        f"   Weight = {weight}",
        f"   Rise = {spec.rise}",
        f"   Fall = {spec.fall}",
        f"   Result = {runner.result}",
        "   Insecure = no",
        f"   Init state = {init}",
        f"   Status = {'GOOD' if good else 'BAD'}",
        "   Script uid:gid = 0:0",
        "   VRRP instances :",
    ]
    if trackers:
        lines.append("   Tracking instances :")
        lines += [f"     {name}, weight {w}" for name, w in trackers]
    lines.append(f"   State = {'running' if running else 'idle'}")
    return lines


@dataclass(frozen=True, slots=True)
class Sockpool:
    """One keepalived socket-pool entry: instances (name, VRID) sharing interface, family
    and unicast source (None: multicast), served by hagate's socket ``fd``."""

    fd: int
    interface: str
    family: int  # 4 or 6
    unicast_src: str | None
    rx_buf_size: int
    instances: tuple[tuple[str, int], ...]


def sockpool(runtimes: Sequence[InstanceRuntime]) -> list[Sockpool]:
    """keepalived's pool (vrrp_scheduler alloc_sock) from the running instances: keyed by
    interface, family and unicast source, in first-use order; instances by VRID."""
    pool: dict[tuple[int, str, int, str | None], list[tuple[str, int]]] = {}
    bufs: dict[tuple[int, str, int, str | None], int] = {}
    for rt in runtimes:
        plan = rt.plan
        src = None if plan.multicast else str(plan.source)
        key = (rt.sock.fileno(), rt.sock.ifname, plan.family, src)
        pool.setdefault(key, []).append((rt.name, plan.params.vrid))
        bufs[key] = rt.sock.rx_buf_size
    out = []
    for (fd, ifname, family, src), members in pool.items():
        by_vrid = tuple(sorted(members, key=lambda m: m[1]))
        out.append(Sockpool(fd, ifname, family, src, bufs[fd, ifname, family, src], by_vrid))
    return out


def _sockpool_lines(entry: Sockpool) -> list[str]:
    lines = [
        f" fd_in {entry.fd} fd_out = {entry.fd}",
        f"   Interface = {entry.interface}",
        f"   Family = IPv{entry.family}",
        "   Protocol = VRRP",
        f"   Type = {'Unicast' if entry.unicast_src else 'Multicast'}",
    ]
    if entry.unicast_src:
        lines.append(f"   Address = {entry.unicast_src}")
    lines.append(f"   Rx buf size = {entry.rx_buf_size}")
    lines.append("   VRRP instances")
    lines += [f"     {name} vrid {vrid}" for name, vrid in entry.instances]
    return lines


def data_text(
    router_id: str | None,
    runtimes: Sequence[InstanceRuntime],
    runners: Mapping[str, ScriptRunner],
    now_wall: float,
    now_loop: float,
    pool: Sequence[Sockpool] = (),
) -> str:
    """keepalived.data (vrrp_print_data) as far as hagate has the facts."""
    lines = ["", "------< Global definitions >------", " Network namespace = (default)"]
    lines.append(f" Router ID = {router_id or os.uname().nodename}")
    if runtimes:
        lines.append("------< VRRP Topology >------")
        for rt in runtimes:
            lines += _instance_lines(rt, now_wall, now_loop)
    if pool:  # keepalived's order: Topology, Sockpool, Sync groups, Scripts
        lines.append("------< VRRP Sockpool >------")
        for entry in pool:
            lines += _sockpool_lines(entry)
    groups: dict[str, list[InstanceRuntime]] = {}
    for rt in runtimes:
        if rt.plan.sync_group:
            groups.setdefault(rt.plan.sync_group, []).append(rt)
    if groups:
        lines.append("------< VRRP Sync groups >------")
        for name, members in groups.items():
            states = {rt.machine.state for rt in members}
            state = state_name(states.pop()) if len(states) == 1 else "INIT"
            lines.append(f" VRRP Sync Group = {name}, {state}")
            faults = sum(1 for rt in members if rt.machine.state is State.FAULT)
            inits = sum(1 for rt in members if rt.machine.state is State.INITIALIZE)
            lines.append(f"   Num member fault {faults}, num member init {inits}")
            lines.append("   VRRP member instances :")
            lines += [f"     {rt.name}" for rt in members]
            lines.append("   Using smtp notification = no")
    tracked = {name for rt in runtimes for name, _w in _track_scripts(rt)}
    if any(name in tracked for name in runners):
        lines.append("------< VRRP Scripts >------")
        for name, runner in runners.items():
            trackers = [
                (rt.name, w) for rt in runtimes for sname, w in _track_scripts(rt) if sname == name
            ]
            if trackers:  # keepalived drops a vrrp_script nothing tracks
                lines += _script_lines(runner, trackers, False)
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True, slots=True)
class MonitorFiles:
    """Where the signal dumps go: ``keepalived.data`` / ``.stats`` / ``.json`` in ``directory``."""

    directory: Path

    @property
    def data(self) -> Path:
        return self.directory / DATA_FILE

    @property
    def stats(self) -> Path:
        return self.directory / STATS_FILE

    @property
    def json(self) -> Path:
        return self.directory / JSON_FILE
