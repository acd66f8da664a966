"""``load(path)``: one node's keepalived.conf to a :class:`Config` and its findings."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

from hagate.config.blocks import (
    global_defs,
    unknown,
    vrrp_script,
    vrrp_sync_group,
    vrrp_track_file,
    vrrp_track_process,
)
from hagate.config.findings import Finding, Impact, Reporter, Severity
from hagate.config.instance import INSTANCE_KEYWORDS, parse_instance
from hagate.config.lexer import INCLUDE_KEYWORDS, Lexer
from hagate.config.limits import DEFAULT_LIMITS, Limits
from hagate.config.model import (
    Config,
    GlobalDefs,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
    VrrpTrackFile,
    VrrpTrackProcess,
)
from hagate.config.parser import Statement, parse_lines
from hagate.config.values import Values

T = TypeVar("T")

# Top-level blocks keepalived knows that hagate does not run (LVS, BFD, static routes...).
UNSUPPORTED_BLOCKS = {
    "virtual_server": "LVS virtual_server",
    "virtual_server_group": "LVS virtual_server_group",
    "real_server": "LVS real_server",
    "bfd_instance": "BFD",
    "static_ipaddress": "static addresses",
    "static_routes": "static routes",
    "static_rules": "static rules",
    "static_track_group": "static track groups",
    "linkbeat_interfaces": "linkbeat",
    "garp_group": "garp_group",
    "vrrp_track_file_script": "vrrp_track_file",
}


class LoadResult(NamedTuple):
    """``config, findings = load(path)``; the config is usable even with errors."""

    config: Config
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]


def load(
    path: str | Path, limits: Limits = DEFAULT_LIMITS, host_id: str | None = None
) -> LoadResult:
    """Read a keepalived.conf (and its includes); never raises for bad input.

    Bounded by ``limits`` (sizes, file count, include and block depth) and it never blocks
    on a FIFO or device, so it is safe to run in a worker thread of a daemon. ``host_id`` is
    keepalived's config id for ``@ID`` lines (default: the short hostname).
    """
    path = Path(path)
    reporter = Reporter(limits.max_findings)
    lexer = Lexer(reporter, limits, host_id)
    with _no_gc():
        tree = parse_lines(lexer.lines(path), reporter, limits)
        config = build(tree, path, tuple(lexer.files), reporter)
    if lexer.files and not any(st.keyword == "vrrp_instance" for st in tree):
        reporter.warning(str(path), 0, "vrrp_instance", "no vrrp_instance: nothing to run")
    findings = sort_findings(reporter.findings)
    summary = reporter.summary()
    if summary is not None:
        findings.append(summary)
    return LoadResult(config, findings)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic GC off while building millions of acyclic objects (2-3x faster)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """By file (in reading order) and line; stable for findings on the same line."""
    order: dict[str, int] = {}
    for f in findings:
        order.setdefault(f.file, len(order))
    return sorted(findings, key=lambda f: (order[f.file], f.line))


def build(tree: list[Statement], path: Path, files: tuple[Path, ...], r: Reporter) -> Config:
    v = Values(r)
    # keepalived reads global_defs before everything else, wherever it is in the file.
    g = GlobalDefs()
    for st in tree:
        if st.keyword == "global_defs":
            g = global_defs(v, st, g)
    scripts: dict[str, VrrpScript] = {}
    instances: dict[str, VrrpInstance] = {}
    groups: dict[str, VrrpSyncGroup] = {}
    processes: dict[str, VrrpTrackProcess] = {}
    files_: dict[str, VrrpTrackFile] = {}
    for st in tree:
        key = st.keyword
        if key == "global_defs":
            continue
        if key == "vrrp_script":
            script = vrrp_script(v, st)
            if script is not None:
                _add(v, st, scripts, script.name, script, "vrrp_script")
        elif key == "vrrp_instance":
            instance = parse_instance(v, st, g)
            if instance is not None:
                _add(v, st, instances, instance.name, instance, "vrrp_instance")
        elif key == "vrrp_sync_group":
            group = vrrp_sync_group(v, st)
            if group is not None:
                _add(v, st, groups, group.name, group, "vrrp_sync_group")
        elif key == "vrrp_track_process":
            process = vrrp_track_process(v, st)
            if process is not None:
                _add(v, st, processes, process.name, process, "vrrp_track_process")
        elif key in ("track_file", "vrrp_track_file"):  # vrrp_track_file: deprecated synonym
            tracked_file = vrrp_track_file(v, st)
            if tracked_file is not None:
                _add(v, st, files_, tracked_file.name, tracked_file, "track_file")
        elif key in INCLUDE_KEYWORDS:
            v.error(st, "needs a file name or glob (keepalived: unknown keyword)")
        elif key in UNSUPPORTED_BLOCKS:
            v.warning(st, f"{UNSUPPORTED_BLOCKS[key]} is not supported by hagate; block ignored")
        elif key in INSTANCE_KEYWORDS:
            where = "a vrrp_instance block"
            if key in ("track_script", "track_interface") or key.startswith("notify"):
                where += " (or a vrrp_sync_group)"
            v.error(st, f"{key} at top level: it belongs inside {where}")
        elif key in ("vrrp_garp_master_delay", "router_id", "enable_script_security") or (
            key.startswith("vrrp_") and key not in ("vrrp_instance",)
        ):
            v.error(st, f"{key} at top level: it belongs inside global_defs {{ ... }}")
        else:
            unknown(v, st, "the top level")
    instances = _sync_groups(v, instances, groups)
    return Config(
        path=path,
        files=files,
        global_defs=g,
        vrrp_scripts=tuple(scripts.values()),
        vrrp_instances=tuple(instances.values()),
        vrrp_sync_groups=tuple(groups.values()),
        vrrp_track_processes=tuple(processes.values()),
        vrrp_track_files=tuple(files_.values()),
    )


def _add(v: Values, st: Statement, table: dict[str, T], name: str, item: T, kind: str) -> None:
    if name in table:
        v.error(st, f"{kind} {name} is defined twice; the later one is ignored")
        return
    table[name] = item


def _sync_groups(
    v: Values, instances: dict[str, VrrpInstance], groups: dict[str, VrrpSyncGroup]
) -> dict[str, VrrpInstance]:
    out = dict(instances)
    for group in groups.values():
        for member in group.group:
            instance = out.get(member)
            if instance is None:
                v.r.error(
                    group.where.file,
                    group.where.line,
                    "group",
                    f"vrrp_sync_group {group.name}: no vrrp_instance named {member}",
                )
            elif instance.sync_group is not None:
                v.r.error(
                    group.where.file,
                    group.where.line,
                    "group",
                    f"{member} is already in vrrp_sync_group {instance.sync_group}",
                )
            else:
                out[member] = dataclasses.replace(instance, sync_group=group.name)
    return out


__all__ = ["Impact", "LoadResult", "load"]
