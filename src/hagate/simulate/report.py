"""The timeline as text (one row per happening, every node's state after it) and as JSON."""

from __future__ import annotations

from collections.abc import Sequence

from hagate.simulate.runner import DOWN, Result, Row, View
from hagate.simulate.verdicts import Verdict, segments
from hagate.vrrp.actions import StateChanged

MAX_VIP_COLUMNS = 3
SHOWN = {"event", "state", "priority", "discard"}


def _cell(view: View) -> str:
    if view.priority is None:
        return view.state if view.state != DOWN else "-"
    return f"{view.state} {view.priority}"


def header(result: Result) -> list[str]:
    lines = [f"scenario: {_one_line(result.scenario.text)}  (until {result.duration:g} s)"]
    for host in result.cluster.hosts:
        for inst in host.instances:
            p = inst.params
            mode = "unicast" if inst.unicast_peers else "multicast"
            state = p.start_state.value if p.start_state else "auto"
            extra = ", nopreempt" if p.nopreempt else ""
            tracked = ", ".join(
                f"{t.name}{'' if not t.weight else f' {t.weight:+d}'}" for t in p.tracked
            )
            lines.append(
                f"  {inst.key:<10} {host.path}: {inst.name} VRID {p.vrid} VRRPv{p.version}, "
                f"priority {p.priority}, state {state}{extra}, {p.primary_address} {mode}, "
                f"advert_int {p.advert_int:g} s" + (f"; tracks {tracked}" if tracked else "")
            )
    return lines


def _one_line(text: str) -> str:
    parts = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return "; ".join(p.strip("; ") for p in parts if p.strip("; "))


def rows_shown(result: Result, verbose: bool = False) -> list[Row]:
    """Significant rows; a discard is shown the first time per receiver, sender and reason."""
    seen: set[tuple[str, str]] = set()
    out: list[Row] = []
    for row in result.rows:
        e = row.entry
        if e.kind not in SHOWN and not verbose:
            continue
        if e.kind == "discard" and not verbose:
            if (e.node, e.text) in seen:
                continue
            seen.add((e.node, e.text))
        out.append(row)
    return out


def timeline_text(result: Result, verbose: bool = False) -> list[str]:
    keys = result.keys
    vips = result.vips if len(result.vips) <= MAX_VIP_COLUMNS else []
    widths = [max(len(k), 10) for k in keys]
    both = len("+".join(keys[:2]))
    vip_widths = [max(len(str(v)), min(both, 24)) for v in vips]
    head = f"{'time':>9}  " + "  ".join(f"{k:<{w}}" for k, w in zip(keys, widths, strict=True))
    for vip, w in zip(vips, vip_widths, strict=True):
        head += f"  {vip!s:<{w}}"
    lines = [head + "  what happened"]
    for row in rows_shown(result, verbose):
        e = row.entry
        cells = [f"{_cell(row.views[k]):<{w}}" for k, w in zip(keys, widths, strict=True)]
        for vip, w in zip(vips, vip_widths, strict=True):
            holders = [k for k in keys if vip in row.views[k].vips]
            cells.append(f"{'+'.join(holders) or '-':<{w}}")
        what = e.text if e.node == "link" else f"{e.node}: {e.text}"
        if e.kind == "discard":
            what += " (shown once)"
        lines.append(f"{e.time:9.3f}  " + "  ".join(cells) + "  " + what)
    if len(result.vips) > MAX_VIP_COLUMNS:
        lines.append(f"({len(result.vips)} VIPs: each is held by its instance while MASTER)")
    return lines


def text_report(result: Result, verdicts: Sequence[Verdict], verbose: bool = False) -> str:
    lines = header(result)
    lines.append("")
    lines.extend(timeline_text(result, verbose))
    lines.append("")
    lines.append("verdicts:")
    lines.extend(f"  - {v.text}" for v in verdicts)
    return "\n".join(lines) + "\n"


def to_json(result: Result, verdicts: Sequence[Verdict]) -> dict[str, object]:
    nodes = []
    for host in result.cluster.hosts:
        instances = []
        for inst in host.instances:
            p = inst.params
            instances.append(
                {
                    "key": inst.key,
                    "instance": inst.name,
                    "vrid": p.vrid,
                    "version": p.version,
                    "priority": p.priority,
                    "state": p.start_state.value if p.start_state else None,
                    "nopreempt": p.nopreempt,
                    "address": str(p.primary_address),
                    "address_synthesized": inst.address_synthesized,
                    "unicast_peers": sorted(str(a) for a in inst.unicast_peers),
                    "vips": [str(v) for v in p.vips],
                    "tracked": [
                        {"name": t.name, "weight": t.weight, "reverse": t.reverse}
                        for t in p.tracked
                    ],
                }
            )
        nodes.append({"name": host.name, "file": str(host.path), "instances": instances})
    timeline = [
        {
            "time": round(r.entry.time, 6),
            "node": r.entry.node,
            "kind": r.entry.kind,
            "text": r.entry.text,
            "states": {
                k: {"state": v.state, "priority": v.priority, "vips": sorted(map(str, v.vips))}
                for k, v in r.views.items()
            },
        }
        for r in rows_shown(result)
    ]
    transitions = [
        {
            "time": round(r.entry.time, 6),
            "node": r.entry.node,
            "old": r.entry.action.old.value,
            "new": r.entry.action.new.value,
            "reason": r.entry.action.reason,
        }
        for r in result.rows
        if isinstance(r.entry.action, StateChanged)
    ]
    holders = [
        {
            "vip": str(s.vip),
            "start": round(s.start, 6),
            "end": round(s.end, 6),
            "holders": list(s.holders),
        }
        for vip in result.vips
        for s in segments(result, vip)
    ]
    return {
        "scenario": result.scenario.text,
        "duration": result.duration,
        "nodes": nodes,
        "timeline": timeline,
        "transitions": transitions,
        "vip_holders": holders,
        "verdicts": [v.as_dict() for v in verdicts],
    }
