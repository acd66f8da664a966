"""timeline.png: each user request as a mark (OK above, failed below) and the events as lines.

Event lines carry a number; the numbered list under the plot names them with their times.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hagate.lab.demo.probe import Request
from hagate.lab.demo.timeline import Phase

_COLORS = {
    "crash": "#d62728",
    "restart": "#9467bd",
    "master": "#1f77b4",
    "released": "#8c564b",
    "garp": "#17becf",
    "agent": "#ff7f0e",
    "request": "#2ca02c",
}


def plot_available() -> str | None:
    """None if matplotlib can be imported, else why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); pip install 'hagate[plot]'"
    return None


def write_plot(
    path: Path,
    requests: Sequence[Request],
    phases: Sequence[Phase],
    t0: float,
    title: str,
    fleet: dict[str, Any] | None = None,
) -> None:
    """Write the PNG (matplotlib's Agg backend: no display needed); ``fleet`` (timeline.json's
    fleet part, with --devices) adds the fleet curve: devices reachable over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [e for p in phases for e in p.events]
    axes: tuple[Any, ...]
    if fleet is not None:
        fig, (ax, curve, lat) = plt.subplots(
            3, 1, figsize=(11, 8.4), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
        )
        _fleet_curve(curve, fleet)
        axes = (ax, curve, lat)
    else:
        fig, (ax, lat) = plt.subplots(
            2, 1, figsize=(11, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        axes = (ax, lat)
    ok = [r for r in requests if r.ok]
    bad = [r for r in requests if not r.ok]
    for group, y, color, label in ((ok, 1, "#2ca02c", "OK"), (bad, 0, "#d62728", "failed")):
        ax.scatter([r.start - t0 for r in group], [y] * len(group), marker="|", s=260, c=color,
                   label=f"request {label} ({len(group)})")  # fmt: skip
    ax.set_yticks([0, 1], ["failed", "OK"])
    ax.set_ylim(-0.7, 2.2)
    legend_lines = []
    for number, event in enumerate(events, 1):
        x = event.t - t0
        color = _COLORS.get(event.key, "#7f7f7f")
        for axis in axes:
            axis.axvline(x, color=color, lw=1, ls="--", alpha=0.8)
        ax.annotate(str(number), (x, 1.45 + 0.25 * ((number - 1) % 3)), color=color,
                    fontsize=8, ha="center", weight="bold",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": color})  # fmt: skip
        legend_lines.append(f"{number}  {x:+7.3f} s  {event.label}")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    latencies = [(r.start - t0, (r.end - r.start) * 1000) for r in ok]
    if latencies:
        xs, ys = zip(*latencies, strict=True)
        lat.plot(xs, ys, ".", ms=3, c="#2ca02c")
    lat.set_ylabel("OK latency (ms)", fontsize=8)
    lat.set_xlabel("seconds since node-1 was SIGKILLed (by request send time)")
    half = (len(legend_lines) + 1) // 2
    columns = [legend_lines[:half], legend_lines[half:]]
    scale = 6.4 / fig.get_figheight()  # the legend's lines take a fixed height in inches
    fig.tight_layout(rect=(0, (0.06 + 0.028 * half) * scale, 1, 1))
    for i, column in enumerate(columns):
        fig.text(0.02 + 0.5 * i, 0.01, "\n".join(column), fontsize=7.5, family="monospace",
                 va="bottom")  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fleet_curve(ax: Any, fleet: dict[str, Any]) -> None:
    """Per phase: the share of sampled devices a user reaches, and of agents reconnected."""
    n = fleet.get("devices", 0)
    for i, phase in enumerate(fleet.get("phases", [])):
        reach = phase.get("reachable") or []
        agents = phase.get("agents") or []
        first = i == 0
        if reach:
            xs, ys = zip(*reach, strict=True)
            ax.step(xs, [100 * y for y in ys], where="post", c="#2ca02c", lw=1.6,
                    label="devices reachable by users (sampled)" if first else None)  # fmt: skip
        if agents:
            xs, ys = zip(*agents, strict=True)
            ax.plot([xs[0], *xs], [0, *(100 * y for y in ys)], c="#ff7f0e", lw=1.2, ls="-",
                    label="agents reconnected" if first else None)  # fmt: skip
    ax.set_ylim(-5, 105)
    ax.set_ylabel(f"fleet of {n:,} (%)", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
