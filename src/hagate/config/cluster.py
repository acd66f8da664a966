"""Checks across the configs of all nodes of one cluster, and the preemption outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hagate.config import defaults as D
from hagate.config.findings import Finding, Impact, Reporter
from hagate.config.model import Config, State, VrrpInstance


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    config: Config


@dataclass(slots=True)
class ClusterReport:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def node_names(configs: list[Config]) -> list[str]:
    """router_id when set and unique, else the file name."""
    ids = [c.global_defs.router_id for c in configs]
    if all(ids) and len(set(ids)) == len(ids):
        return [str(i) for i in ids]
    names = [c.path.name for c in configs]
    return names if len(set(names)) == len(names) else [str(c.path) for c in configs]


def check_cluster(configs: list[Config]) -> ClusterReport:
    nodes = [Node(n, c) for n, c in zip(node_names(configs), configs, strict=True)]
    report = ClusterReport()
    r = Reporter()
    groups: dict[tuple[int, int], list[tuple[Node, VrrpInstance]]] = {}
    for node in nodes:
        for inst in node.config.vrrp_instances:
            groups.setdefault((inst.virtual_router_id, inst.family), []).append((node, inst))
    for (vrid, family), members in sorted(groups.items()):
        label = f"VRID {vrid} (IPv{family})"
        present = {n.name for n, _ in members}
        for node in nodes:
            if node.name not in present:
                first = members[0][1]
                r.warning(
                    first.where.file,
                    first.where.line,
                    "virtual_router_id",
                    f"{label} ({first.name}) has no instance on node {node.name}",
                )
        if len(members) < 2:
            continue
        _same(r, label, members)
        _priorities(r, label, members)
        _unicast(r, label, members)
        report.notes.append(explain(label, members))
    report.findings = r.findings
    return report


def _same(r: Reporter, label: str, members: list[tuple[Node, VrrpInstance]]) -> None:
    ref_node, ref = members[0]
    checks: dict[str, Callable[[VrrpInstance], object]] = {
        "version": lambda i: i.version,
        "advert_int": lambda i: i.advert_int,
        "authentication": lambda i: (i.auth_type.value, i.auth_pass),
        "virtual_ipaddress": lambda i: sorted(str(v.interface) for v in i.virtual_ipaddresses),
        "down_timer_adverts": lambda i: i.down_timer_adverts,
    }
    for _node, inst in members[1:]:
        for keyword, get in checks.items():
            mine, theirs = get(inst), get(ref)
            if mine == theirs:
                continue
            if keyword == "authentication":
                why = "authentication differs (auth_type/auth_pass), adverts will be dropped"
            else:
                why = f"{keyword} is {_show(mine)} here but {_show(theirs)} on {ref_node.name}"
            r.error(
                inst.where.file,
                inst.where.line,
                keyword,
                f"{label} ({inst.name}): {why}",
                Impact.OTHER,
            )


def _show(value: object) -> str:
    if isinstance(value, list):
        return "{" + ", ".join(value) + "}"
    if isinstance(value, float):
        return f"{value:g}s"
    return str(value)


def _priorities(r: Reporter, label: str, members: list[tuple[Node, VrrpInstance]]) -> None:
    by_priority: dict[int, list[str]] = {}
    for node, inst in members:
        by_priority.setdefault(inst.priority, []).append(node.name)
    for priority, names in by_priority.items():
        if len(names) < 2:
            continue
        node, inst = next((n, i) for n, i in members if n.name == names[1])
        if priority == D.PRIORITY_OWNER:
            why = f"{len(names)} address owners (priority 255): {', '.join(names)}; at most one"
        else:
            why = (
                f"priority {priority} on {', '.join(names)}: equal priorities are decided by "
                f"the higher primary IP address ({_rfc(inst)} §6.4.3); make them distinct"
            )
        r.error(inst.where.file, inst.where.line, "priority", f"{label}: {why}", Impact.OTHER)


def _unicast(r: Reporter, label: str, members: list[tuple[Node, VrrpInstance]]) -> None:
    modes = {inst.unicast for _, inst in members}
    if len(modes) > 1:
        node, inst = next((n, i) for n, i in members if not i.unicast)
        r.error(
            inst.where.file,
            inst.where.line,
            "unicast_peer",
            f"{label}: {node.name} uses multicast while others use unicast; "
            "they never see each other's adverts",
            Impact.OTHER,
        )
        return
    if not modes.pop():
        return
    for node, inst in members:
        peers = {p.address for p in inst.unicast_peers}
        for other_node, other in members:
            if other is inst:
                continue
            if other.unicast_src_ip is None:
                r.warning(
                    other.where.file,
                    other.where.line,
                    "unicast_src_ip",
                    f"{label} ({other.name}) on {other_node.name}: no unicast_src_ip, "
                    "so hagate cannot check that the peers point at each other",
                )
            elif other.unicast_src_ip not in peers:
                r.error(
                    inst.where.file,
                    inst.where.line,
                    "unicast_peer",
                    f"{label} ({inst.name}) on {node.name}: unicast_peer does not list "
                    f"{other.unicast_src_ip}, the unicast_src_ip of {other_node.name}",
                    Impact.OTHER,
                )


def _effective_range(inst: VrrpInstance, config: Config) -> tuple[int, int]:
    """Lowest and highest priority tracking weights can give (keepalived: 1..254; 255 fixed)."""
    if inst.address_owner:
        return inst.priority, inst.priority
    down = up = 0
    for ref in inst.track_scripts:
        script = config.script(ref.name)
        weight = ref.weight if ref.weight is not None else (script.weight if script else 0)
        if weight < 0:
            down += weight
        else:
            up += weight
    return max(1, inst.priority + down), min(254, inst.priority + up)


def _rfc(inst: VrrpInstance) -> str:
    """The RFC that defines this instance's protocol version (v2: 3768, v3: 9568)."""
    return "RFC 9568" if inst.version == 3 else "RFC 3768"


def explain(label: str, members: list[tuple[Node, VrrpInstance]]) -> str:
    """In words: who is master, what happens when it fails and when it comes back."""
    ranked = sorted(members, key=lambda m: m[1].priority, reverse=True)
    (top_node, top), (second_node, second) = ranked[0], ranked[1]
    rfc = _rfc(top)
    if top.priority == second.priority:
        return (
            f"{label}: {top_node.name} and {second_node.name} are tied at priority "
            f"{top.priority}; the one with the higher primary IP address wins every election "
            f"({rfc} §6.4.3). Give them distinct priorities."
        )
    lines = [
        f"{label}: {top_node.name} (priority {top.priority}) is master when all nodes are up; "
        f"if it fails, {second_node.name} (priority {second.priority}) takes over after "
        f"Master_Down_Interval = {second.master_down_interval:.2f}s "
        f"({second.down_timer_adverts} x advert_int {second.advert_int:g}s + skew_time "
        f"{second.skew_time:.2f}s, {rfc} §6.1)."
    ]
    others_nopreempt = [n.name for n, i in ranked[1:] if i.nopreempt]
    sticky = top.nopreempt and top.state is State.BACKUP and not top.address_owner
    if sticky:
        lines.append(
            f"When {top_node.name} recovers it stays backup: its nopreempt keeps "
            f"{second_node.name} as master (sticky master)."
        )
    else:
        why = (
            "it is the address owner (priority 255), which always preempts"
            if top.address_owner
            else f"it has the higher priority and no nopreempt ({rfc} §6.1 Preempt_Mode)"
        )
        text = f"When {top_node.name} recovers it takes the VIP back from {second_node.name}: {why}"
        if others_nopreempt:
            text += (
                f", despite {', '.join(others_nopreempt)}'s nopreempt: nopreempt only stops "
                "the router that has it from preempting a lower-priority master, and "
                f"{', '.join(others_nopreempt)} never has the higher priority"
            )
        lines.append(text + ".")
        lines.append(
            "For a sticky master (whoever holds the VIP keeps it), configure every node with "
            "'state BACKUP' and 'nopreempt', and priorities below 255 that differ "
            f"(e.g. {top_node.name} 150, {second_node.name} 100)."
        )
    for node, inst in ranked[1:]:
        low, _ = _effective_range(top, top_node.config)
        _, high = _effective_range(inst, node.config)
        if low < inst.priority or high > top.priority:
            lines.append(
                f"Tracking can reorder them: {top_node.name} can drop to {low} and "
                f"{node.name} can reach {high}, and the higher then wins "
                + ("(unless it has nopreempt)." if not sticky else "when an election happens.")
            )
    return " ".join(lines)
