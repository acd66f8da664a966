"""``--plot FILE``: states, VIP holders and effective priorities over time (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from hagate.simulate.runner import Result
from hagate.simulate.verdicts import SPLIT_BRAIN_MIN, segments

COLOURS = {
    "MASTER": "#2ca02c",
    "BACKUP": "#1f77b4",
    "FAULT": "#d62728",
    "STOP": "#7f7f7f",
    "DOWN": "#dddddd",
    "INITIALIZE": "#dddddd",
}


class PlotError(RuntimeError):
    """matplotlib is missing or the file cannot be written."""


def plot(result: Result, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise PlotError(f"--plot needs matplotlib ({exc}); pip install 'hagate[plot]'") from None
    keys = result.keys
    end = result.duration
    fig, (ax, axp) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 2.0 + 0.9 * len(keys)), height_ratios=(2, 1)
    )
    spans: dict[str, list[tuple[float, float, str]]] = {k: [] for k in keys}
    prio: dict[str, list[tuple[float, float]]] = {k: [] for k in keys}
    last: dict[str, tuple[float, str]] = {k: (0.0, "DOWN") for k in keys}
    for row in result.rows:
        t = row.entry.time
        for k in keys:
            view = row.views[k]
            since, state = last[k]
            if view.state != state:
                spans[k].append((since, t, state))
                last[k] = (t, view.state)
            if view.priority is not None and (not prio[k] or prio[k][-1][1] != view.priority):
                prio[k].append((t, view.priority))
    for k in keys:
        since, state = last[k]
        spans[k].append((since, end, state))
    rows = {k: len(keys) - 1 - i for i, k in enumerate(keys)}  # first node on top
    for k, y in rows.items():
        for start, stop, state in spans[k]:
            if stop > start:
                ax.broken_barh(
                    [(start, stop - start)], (y - 0.35, 0.7), color=COLOURS.get(state, "#999")
                )
        if prio[k]:
            xs = [t for t, _ in prio[k]] + [end]
            ys = [p for _, p in prio[k]]
            axp.step(xs, [*ys, ys[-1]], where="post", label=k)
    for vip in result.vips:
        for seg in segments(result, vip):
            if len(seg.holders) > 1 and seg.end - seg.start >= SPLIT_BRAIN_MIN:
                ax.axvspan(seg.start, seg.end, color="#ff000030", zorder=0)
    for row in result.rows:
        e = row.entry
        if e.kind == "event" and (e.node == "link" or not e.text.startswith("tracked")):
            ax.axvline(e.time, color="black", linewidth=0.6, linestyle=":")
            ax.annotate(
                f"{e.node if e.node != 'link' else ''} {e.text}".strip()[:28],
                (e.time, len(keys) - 0.4),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
            )
    ax.set_yticks(list(rows.values()), list(rows))
    ax.set_ylim(-0.6, len(keys) - 0.4)
    ax.set_xlim(0, end)
    ax.set_title(f"hagate simulate: {len(keys)} instance(s), red: split brain")
    ax.legend(
        handles=[Patch(color=c, label=s) for s, c in COLOURS.items() if s != "INITIALIZE"],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
    )
    axp.set_ylabel("effective priority")
    axp.set_xlabel("virtual time (s)")
    axp.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)
