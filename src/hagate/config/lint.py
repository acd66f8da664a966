"""One node's checks beyond syntax: script references, script files, script security."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from hagate.config.findings import Finding, Impact, Reporter
from hagate.config.model import Config, Location, NotifyScript, VrrpInstance, command_path

_NOTIFY_FIELDS = (
    "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify",
    "notify_master_rx_lower_pri", "notify_deleted_script",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScriptUse:
    """A command line keepalived would run, where it is configured, and its user."""

    keyword: str
    command: str
    where: Location
    user: str | None
    impact: Impact = Impact.WOULD_RUN  # keepalived -t checks vrrp_script files only


def lint(config: Config, check_files: bool = True) -> list[Finding]:
    r = Reporter()
    _references(config, r)
    _priorities(config, r)
    uses = _script_uses(config)
    if check_files:
        uses = [u for u in uses if _script_file(u, config, r)]
    if uses and not config.global_defs.enable_script_security:
        first = uses[0]
        r.error(
            first.where.file,
            first.where.line,
            first.keyword,
            "scripts are configured but global_defs has no enable_script_security: "
            "keepalived runs them as root unchecked (keepalived -t exits 5)",
            Impact.SCRIPT_SECURITY,
        )
    return r.findings


def _references(config: Config, r: Reporter) -> None:
    referenced: set[str] = set()
    holders: list[tuple[str, tuple[object, ...]]] = []
    for inst in config.vrrp_instances:
        holders.append((f"vrrp_instance {inst.name}", inst.track_scripts))
    for group in config.vrrp_sync_groups:
        holders.append((f"vrrp_sync_group {group.name}", group.track_scripts))
    for owner, refs in holders:
        for ref in refs:
            name = getattr(ref, "name", "")
            where: Location = getattr(ref, "where", Location(str(config.path), 0))
            referenced.add(name)
            if config.script(name) is None:
                r.error(
                    where.file,
                    where.line,
                    "track_script",
                    f"{owner} tracks '{name}', but no vrrp_script {name} is defined "
                    "(keepalived ignores the reference)",
                )
    for script in config.vrrp_scripts:
        if script.name not in referenced:
            r.warning(
                script.where.file,
                script.where.line,
                "vrrp_script",
                f"{script.name} is defined but no track_script uses it; it never runs",
            )
    seen: dict[tuple[str | None, int, int], VrrpInstance] = {}
    for inst in config.vrrp_instances:
        key = (inst.interface, inst.virtual_router_id, inst.family)
        other = seen.get(key)
        if other is not None and not (inst.unicast and other.unicast):
            r.error(
                inst.where.file,
                inst.where.line,
                "virtual_router_id",
                f"({inst.name}) VRID {inst.virtual_router_id} is already used by "
                f"{other.name} on {inst.interface} (IPv{inst.family})",
            )
        seen.setdefault(key, inst)


def _priorities(config: Config, r: Reporter) -> None:
    for inst in config.vrrp_instances:
        if inst.address_owner and inst.track_scripts:
            r.warning(
                inst.where.file,
                inst.where.line,
                "track_script",
                f"({inst.name}) priority 255 cannot be lowered by tracking weights "
                "(keepalived); a failing script changes nothing unless its weight is 0",
            )
        group = config.sync_group(inst.sync_group)
        weighted = group is not None and group.tracking_weight
        if inst.sync_group and not weighted and any(t.weight for t in inst.track_scripts):
            r.warning(
                inst.where.file,
                inst.where.line,
                "track_script",
                f"({inst.name}) is in vrrp_sync_group {inst.sync_group}: keepalived sets "
                "its track_script weights to 0 (sync_group_tracking_weight keeps them)",
            )


def _script_uses(config: Config) -> list[ScriptUse]:
    g = config.global_defs
    uses: list[ScriptUse] = []
    referenced = {t.name for i in config.vrrp_instances for t in i.track_scripts}
    referenced |= {t.name for s in config.vrrp_sync_groups for t in s.track_scripts}
    for script in config.vrrp_scripts:
        if script.name in referenced:
            uses.append(
                ScriptUse("script", script.script, script.where, script.user or g.script_user)
            )
    holders: list[object] = [*config.vrrp_instances, *config.vrrp_sync_groups]
    for holder in holders:
        for field in _NOTIFY_FIELDS:
            notify: NotifyScript | None = getattr(holder, field, None)
            if notify is not None:
                uses.append(
                    ScriptUse(
                        field,
                        notify.command,
                        notify.where,
                        notify.user or g.script_user,
                        Impact.OTHER,
                    )
                )
    for field in ("notify_fifo_script", "vrrp_notify_fifo_script"):
        fifo_script: NotifyScript | None = getattr(g, field)
        if fifo_script is not None:
            user = fifo_script.user or g.script_user
            uses.append(
                ScriptUse(field, fifo_script.command, fifo_script.where, user, Impact.OTHER)
            )
    return uses


def _resolve(command: str) -> Path | None:
    program = command_path(command)
    if not program:
        return None
    if "/" in program:
        return Path(program)
    try:
        found = shutil.which(program)
    except (OSError, ValueError):
        return None
    return Path(found) if found else None


def _probe(path: Path) -> str:
    """ "" for an executable regular file, else why not (never raises: a name component over
    255 bytes or a NUL is an ordinary 'no such file', as keepalived reports it)."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "no such file (a name in the path is over 255 bytes)"
        return "no such file"
    except ValueError:
        return "no such file"
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        return "not an executable file"
    return ""


def _script_file(use: ScriptUse, config: Config, r: Reporter) -> bool:
    """Checks one script file; True when keepalived would keep it."""
    program = command_path(use.command)
    path = _resolve(use.command)
    where = use.where
    problem = "no such file" if path is None else _probe(path)
    if problem or path is None:
        name = program or repr(use.command)
        if path is not None and not problem.startswith("no such"):
            name = str(path)
        r.error(
            where.file,
            where.line,
            use.keyword,
            f"{name}: {problem} (keepalived disables the script)",
            use.impact,
        )
        return False
    runs_as_root = use.user in (None, "root") and _default_user_is_root(use.user)
    if config.global_defs.enable_script_security and runs_as_root:
        unsafe = _unsafe_component(path)
        if unsafe is not None:
            r.error(
                where.file,
                where.line,
                use.keyword,
                f"{path} runs as root but {unsafe} is writable by a non-root user; "
                "with enable_script_security keepalived refuses it",
            )
            return False
    return True


def _default_user_is_root(user: str | None) -> bool:
    if user == "root":
        return True
    try:
        import pwd

        pwd.getpwnam("keepalived_script")
    except (KeyError, ImportError):
        return True  # keepalived falls back to root when keepalived_script does not exist
    return False


def _unsafe_component(path: Path) -> Path | None:
    """The first of the file and its directories a non-root user could change, or None."""
    target = path.resolve()
    for part in [target, *target.parents]:
        try:
            st = part.stat()
        except OSError:
            return part
        if st.st_uid != 0:
            return part
        mode = st.st_mode
        sticky_dir = stat.S_ISDIR(mode) and mode & stat.S_ISVTX
        group_writable = mode & stat.S_IWGRP and st.st_gid != 0
        if (mode & stat.S_IWOTH or group_writable) and not sticky_dir:
            return part
    return None
