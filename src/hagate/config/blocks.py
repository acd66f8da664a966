"""global_defs, vrrp_script, vrrp_sync_group and the entries they share with vrrp_instance."""

from __future__ import annotations

from typing import Any

from hagate.config import defaults as D
from hagate.config.findings import Impact
from hagate.config.lexer import quoted_words
from hagate.config.model import (
    GlobalDefs,
    Location,
    NotifyFifo,
    NotifyScript,
    TrackInterface,
    TrackScript,
    VrrpScript,
    VrrpSyncGroup,
    VrrpTrackFile,
    VrrpTrackProcess,
)
from hagate.config.parser import Statement
from hagate.config.values import Values

NOTIFY_KEYWORDS = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")

# keepalived keywords hagate recognises but does not implement (ignored with a warning).
GLOBAL_UNSUPPORTED = frozenset(
    {
        "lvs_id", "smtp_helo_name", "smtp_alert_vrrp", "smtp_alert_checker",
        "checker_log_all_failures", "no_email_faults", "default_interface", "vrrp_min_garp",
        "vrrp_garp_extra_if", "vrrp_skip_check_adv_addr", "vrrp_priority", "checker_priority",
        "bfd_priority",
        "vrrp_no_swap", "checker_no_swap", "bfd_no_swap", "vrrp_rt_priority",
        "checker_rt_priority", "bfd_rt_priority", "vrrp_iptables", "vrrp_ipsets", "nftables",
        "nftables_priority", "nftables_ifindex", "nftables_counters", "lvs_notify_fifo",
        "log_unknown_vrids", "dynamic_interfaces", "net_namespace",
        "net_namespace_ipvs", "namespace_with_ipsets", "instance", "use_pid_dir",
        "linkbeat_use_polling", "child_wait_time", "max_auto_priority",
        "min_auto_priority_delay", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
        "lvs_sync_daemon", "lvs_flush", "lvs_flush_onstop", "lvs_timeouts", "snmp_socket",
        "enable_traps", "enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc",
        "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_keepalived", "enable_dbus",
        "random_seed", "script_security", "process_names",
        "process_name", "vrrp_process_name", "checker_process_name", "bfd_process_name",
        "vrrp_garp_lower_prio_repeat_all", "vrrp_netlink_cmd_rcv_bufs",
        "vrrp_netlink_monitor_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force",
        "vrrp_netlink_monitor_rcv_bufs_force", "umask", "startup_script",
        "startup_script_timeout", "shutdown_script", "shutdown_script_timeout",
        "no_checker_emails", "vrrp_dont_track_primary",
    }
)  # fmt: skip

SYNC_GROUP_UNSUPPORTED = frozenset(
    {
        "track_bfd", "notify_deleted",
    }
)  # fmt: skip


def location(st: Statement) -> Location:
    return Location(st.file, st.line)


def unsupported(v: Values, st: Statement, where: str) -> None:
    v.warning(st, f"keepalived {where} keyword not supported by hagate; ignored")


def unknown(v: Values, st: Statement, where: str) -> None:
    v.warning(st, f"unknown keyword in {where}; ignored")


def notify_script(v: Values, st: Statement) -> NotifyScript | None:
    """``notify_x SCRIPT|"SCRIPT ARGS" [username [groupname]]``."""
    words = v.command_words(st)
    if words is None:
        v.error(st, "unterminated quote or backslash at the end; keepalived ignores it")
        return None
    if not words:
        v.r.error(st.file, st.line, st.keyword, "needs a script path", Impact.CANNOT_RUN)
        return None
    if len(words) > 3:
        v.extra(st, 3, words)
    if not _command_ok(v, st, words[0]):
        return None
    user = words[1] if len(words) > 1 else None
    group = words[2] if len(words) > 2 else None
    return NotifyScript(words[0], user, group, location(st))


def notify_fifo(v: Values, st: Statement) -> NotifyFifo | None:
    """``notify_fifo FIFO_NAME [username [groupname]]``."""
    path = v.first(st, used=3)
    if path is None:
        return None
    if not path.startswith("/"):
        v.warning(st, f"{path!r} is relative: keepalived resolves it from its working directory")
    user = st.words[1] if len(st.words) > 1 else None
    group = st.words[2] if len(st.words) > 2 else None
    return NotifyFifo(path, user, group, location(st))


def _command_ok(v: Values, st: Statement, command: str) -> bool:
    """keepalived splits the command word once more into argv (quotes, escapes); refuse what
    that cannot split or what would put a NUL in an argument (keepalived cuts it there)."""
    argv = quoted_words(command, cut_nul=False)
    if not argv:
        v.error(st, f"{command!r}: keepalived cannot split this command; it is ignored")
        return False
    if any("\0" in word for word in argv):
        v.error(st, f"{command!r}: a NUL in the command; it is ignored")
        return False
    return True


def _weight(
    v: Values, st: Statement, words: list[str], lo: int, hi: int
) -> tuple[int | None, bool]:
    """Parses ``weight N [reverse|noreverse|no_reverse]`` from ``words``."""
    weight: int | None = None
    reverse = False
    i = 0
    while i < len(words):
        word = words[i]
        if word == "weight" and i + 1 < len(words):
            weight = v.integer(st, words[i + 1], lo, hi)
            i += 2
            continue
        if word == "reverse":
            reverse = True
        elif word in ("noreverse", "no_reverse"):
            reverse = False
        else:
            v.warning(st, f"'{word}' not understood; ignored")
        i += 1
    return weight, reverse


TRACK_WEIGHTS = (-254, 254)  # track_process / track_file weights (keepalived)


def track_scripts(
    v: Values, st: Statement, weights: tuple[int, int] = D.WEIGHT_RANGE
) -> tuple[TrackScript, ...]:
    """``NAME [weight N [reverse]]`` entries (track_script, track_process, track_file)."""
    out: list[TrackScript] = []
    for entry in v.entries(st):
        weight, reverse = _weight(v, entry, entry.words[1:], *weights)
        if "weight" in entry.words[1:] and weight is None:
            continue  # out of range: keepalived ignores the whole entry
        out.append(TrackScript(entry.words[0], weight, reverse, location(entry)))
    return tuple(out)


def track_interfaces(v: Values, st: Statement) -> tuple[TrackInterface, ...]:
    out: list[TrackInterface] = []
    for entry in v.entries(st):
        weight, reverse = _weight(v, entry, entry.words[1:], *D.WEIGHT_RANGE)
        if "weight" in entry.words[1:] and weight is None:
            continue
        out.append(TrackInterface(entry.words[0], weight or 0, reverse))
    return tuple(out)


def global_defs(v: Values, st: Statement, base: GlobalDefs) -> GlobalDefs:
    f: dict[str, Any] = {"where": location(st)}
    seconds = {
        "vrrp_garp_master_delay": (0.0, 255.0),
        "vrrp_garp_master_refresh": (0.0, 2**31 - 1.0),
        "vrrp_garp_lower_prio_delay": (0.0, 255.0),
        "vrrp_garp_interval": (0.0, 1.0),
        "vrrp_gna_interval": (0.0, 1.0),
        "vrrp_startup_delay": (0.0, 2**31 / 1e6),
    }
    integers = {
        "vrrp_garp_master_repeat": (1, 255),
        "vrrp_garp_master_refresh_repeat": (1, 255),
        "vrrp_garp_lower_prio_repeat": (1, 255),
        "vrrp_down_timer_adverts": D.DOWN_TIMER_ADVERTS_RANGE,
        "smtp_connect_timeout": (1, 2**31 - 1),
    }
    flags = {
        "vrrp_check_unicast_src", "vrrp_v3_checksum_as_v2", "vrrp_strict", "smtp_alert",
        "vrrp_notify_priority_changes", "vrrp_lower_prio_no_advert",
        "vrrp_higher_prio_send_advert",
    }  # fmt: skip
    for item in v.block(st):
        key = item.keyword
        if key != "notification_email":
            v.no_block(item)
        if key in seconds:
            value = v.first_seconds(item, *seconds[key])
            if value is not None:
                f[key] = value
        elif key in integers:
            number = v.first_integer(item, *integers[key])
            if number is not None:
                f[key] = number
        elif key in flags or key == "enable_script_security":
            flag = v.flag(item) if key != "enable_script_security" else True
            if key == "enable_script_security":
                v.extra(item, 0)
            if flag is not None:
                f[key] = flag
        elif key == "vrrp_version":
            number = v.first_integer(item, 2, 3)
            if number is not None:
                f[key] = number
        elif key in ("router_id", "notification_email_from", "smtp_server"):
            text = v.first(item, used=2 if key == "smtp_server" else 1)
            if text is not None:
                f[key] = text
        elif key == "script_user":
            text = v.first(item, used=2)
            if text is not None:
                f["script_user"] = text
                f["script_group"] = item.words[1] if len(item.words) > 1 else None
        elif key == "notification_email":
            f[key] = tuple(e.words[0] for e in v.entries(item))
        elif key in ("vrrp_mcast_group4", "vrrp_mcast_group6"):
            text = v.first(item)
            addr = v.address(item, text) if text is not None else None
            if addr is not None:
                if not addr.is_multicast or addr.version != int(key[-1]):
                    v.error(item, f"{addr} is not an IPv{key[-1]} multicast address")
                else:
                    f[key] = addr
        elif key in ("notify_fifo", "vrrp_notify_fifo"):
            fifo = notify_fifo(v, item)
            if fifo is not None:
                f[key] = fifo
        elif key in ("notify_fifo_script", "vrrp_notify_fifo_script"):
            f[key] = notify_script(v, item)
        elif key in GLOBAL_UNSUPPORTED or key.startswith(("lvs_", "enable_snmp", "nftables")):
            unsupported(v, item, "global_defs")
        else:
            unknown(v, item, "global_defs")
    merged = {**_asdict(base), **f}
    # keepalived: lower-priority GARP settings default to the master ones.
    if "vrrp_garp_lower_prio_delay" not in f and "vrrp_garp_master_delay" in f:
        merged["vrrp_garp_lower_prio_delay"] = merged["vrrp_garp_master_delay"]
    if "vrrp_garp_lower_prio_repeat" not in f and "vrrp_garp_master_repeat" in f:
        merged["vrrp_garp_lower_prio_repeat"] = merged["vrrp_garp_master_repeat"]
    return GlobalDefs(**merged)


def _asdict(obj: GlobalDefs) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def vrrp_script(v: Values, st: Statement) -> VrrpScript | None:
    name = v.first(st, used=1)
    if name is None:
        return None
    f: dict[str, Any] = {"name": name, "where": location(st)}
    for item in v.block(st, used=1):
        key = item.keyword
        v.no_block(item)
        if key == "script":
            words = v.command_words(item)
            if not words:
                # keepalived 2.2.7 crashes (SIGSEGV) on a script line it cannot split.
                v.r.error(item.file, item.line, key, "needs a script path", Impact.CANNOT_RUN)
                continue
            # keepalived runs the first word, split again at unquoted blanks (notify.c
            # set_script_params_array): quote a command with arguments.
            if len(words) > 1:
                v.extra(item, 1, words)
            if _command_ok(v, item, words[0]):
                f["script"] = words[0]
        elif key in ("interval", "timeout"):
            value = v.first_seconds(item, 0.0, 2**31 / 1e6)
            if value is not None and value <= 0:
                v.error(item, f"must be greater than 0; keepalived uses 1 ({name})")
                value = 1.0
            if value is not None:
                f[key] = value
        elif key == "weight":
            weight, reverse = _weight(v, item, ["weight", *item.words], *D.WEIGHT_RANGE)
            if weight is not None:
                f["weight"], f["reverse"] = weight, reverse
        elif key in ("rise", "fall"):
            number = v.first_integer(item, 1, 2**31 - 1)
            if number is not None:
                f[key] = number
        elif key == "user":
            text = v.first(item, used=2)
            if text is not None:
                f["user"] = text
                f["group"] = item.words[1] if len(item.words) > 1 else None
        elif key == "init_fail":
            v.extra(item, 0)
            f["init_fail"] = True
        else:
            unknown(v, item, "vrrp_script")
    if "script" not in f:
        v.error(st, f"vrrp_script {name} has no 'script' line; it is ignored")
        return None
    if "timeout" not in f:
        f["timeout"] = f.get("interval", D.SCRIPT_INTERVAL)
    return VrrpScript(**f)


def vrrp_track_process(v: Values, st: Statement) -> VrrpTrackProcess | None:
    """``vrrp_track_process NAME { process ...; quorum N; weight N [reverse]; ... }``."""
    name = v.first(st, used=1)
    if name is None:
        return None
    f: dict[str, Any] = {"name": name, "where": location(st)}
    for item in v.block(st, used=1):
        key = item.keyword
        v.no_block(item)
        if key == "process":
            words = v.command_words(item)
            if not words:
                v.error(item, "needs a process name")
                continue
            f["process"], f["params"] = words[0], tuple(words[1:])
            if len(words) > 1:
                f["full_command"] = True
                f.setdefault("param_match", "exact")
        elif key == "param_match":
            text = v.first(item)
            if text in ("initial", "partial"):
                f["param_match"], f["full_command"] = text, True
            elif text is not None:
                v.error(item, f"'{text}' is not initial or partial; ignored")
        elif key == "full_command":
            v.extra(item, 0)
            f["full_command"] = True
        elif key in ("quorum", "quorum_max"):
            number = v.first_integer(item, 1 if key == "quorum" else 0, 65535)
            if number is not None:
                f[key] = number
        elif key == "weight":
            weight, reverse = _weight(v, item, ["weight", *item.words], *TRACK_WEIGHTS)
            if weight is not None:
                f["weight"], f["reverse"] = weight, reverse
        elif key in ("delay", "fork_delay", "terminate_delay"):
            value = v.first_seconds(item, 0.0, 2**31 / 1e6)
            if value is not None:
                for field in ("fork_delay", "terminate_delay") if key == "delay" else (key,):
                    f[field] = value
        else:
            unknown(v, item, "vrrp_track_process")
    if "process" not in f:
        v.error(st, f"vrrp_track_process {name} has no 'process' line; it is ignored")
        return None
    qmax = f.get("quorum_max")
    if qmax is not None and qmax < f.get("quorum", 1):
        if qmax == 0 and "quorum" not in f:
            f["quorum"] = 0  # keepalived: quorum_max 0 means "must not run"
        else:
            v.error(st, f"vrrp_track_process {name}: quorum_max is less than quorum; ignored")
            f.pop("quorum_max")
    return VrrpTrackProcess(**f)


def vrrp_track_file(v: Values, st: Statement) -> VrrpTrackFile | None:
    """``track_file NAME { file PATH; weight N [reverse]; init_file [VALUE] [overwrite] }``."""
    name = v.first(st, used=1)
    if name is None:
        return None
    f: dict[str, Any] = {"name": name, "where": location(st)}
    for item in v.block(st, used=1):
        key = item.keyword
        v.no_block(item)
        if key == "file":
            text = v.first(item)
            if text is not None:
                f["file"] = text
        elif key == "weight":
            weight, reverse = _weight(v, item, ["weight", *item.words], *TRACK_WEIGHTS)
            if weight is not None:
                f["weight"], f["reverse"] = weight, reverse
        elif key == "init_file":
            words = list(item.words)
            f["overwrite"] = "overwrite" in words
            values = [w for w in words if w != "overwrite"]
            number = v.integer(item, values[0], -(2**31), 2**31 - 1) if values else 0
            if number is not None:
                f["init_file"] = number
        else:
            unknown(v, item, "track_file")
    if "file" not in f:
        v.error(st, f"track_file {name} has no 'file' line; it is ignored")
        return None
    return VrrpTrackFile(**f)


def vrrp_sync_group(v: Values, st: Statement) -> VrrpSyncGroup | None:
    name = v.first(st)
    if name is None:
        return None
    f: dict[str, Any] = {"name": name, "where": location(st)}
    for item in v.block(st, used=1):
        key = item.keyword
        if key not in ("group", "track_script", "track_interface", "track_process", "track_file"):
            v.no_block(item)
        if key == "group":
            f["group"] = tuple(e.words[0] for e in v.entries(item))
        elif key == "track_script":
            f["track_scripts"] = track_scripts(v, item)
        elif key == "track_interface":
            f["track_interfaces"] = track_interfaces(v, item)
        elif key in ("track_process", "track_file"):
            f[key.replace("process", "processe") + "s"] = track_scripts(v, item, TRACK_WEIGHTS)
        elif key in NOTIFY_KEYWORDS:
            f[key] = notify_script(v, item)
        elif key == "smtp_alert":
            f["smtp_alert"] = bool(v.flag(item))
        elif key == "notify_priority_changes":
            flag = v.flag(item)
            if flag is not None:
                f[key] = flag
        elif key == "sync_group_tracking_weight":
            v.extra(item, 0)
            f["tracking_weight"] = True
        elif key == "global_tracking":
            v.extra(item, 0)
            v.warning(
                item,
                f"({name}) global_tracking is deprecated (keepalived 2.2.7 treats it as "
                "sync_group_tracking_weight); use sync_group_tracking_weight",
            )
            f["tracking_weight"] = True
        elif key in SYNC_GROUP_UNSUPPORTED:
            unsupported(v, item, "vrrp_sync_group")
        else:
            unknown(v, item, "vrrp_sync_group")
    if not f.get("group"):
        v.error(st, f"vrrp_sync_group {name} has no 'group {{ ... }}' of instances")
    return VrrpSyncGroup(**f)
