"""timeline.png: each user request as a mark (OK above, failed below) and the events as lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
    path: Path, requests: Sequence[Request], phases: Sequence[Phase], t0: float, title: str
) -> None:
    """Write the PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bar) = plt.subplots(
        2, 1, figsize=(11, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ok = [r for r in requests if r.ok]
    bad = [r for r in requests if not r.ok]
    ax.scatter([r.start - t0 for r in ok], [1] * len(ok), marker="|", s=220, c="#2ca02c",
               label=f"request OK ({len(ok)})")  # fmt: skip
    ax.scatter([r.start - t0 for r in bad], [0] * len(bad), marker="|", s=220, c="#d62728",
               label=f"request failed ({len(bad)})")  # fmt: skip
    ax.set_yticks([0, 1], ["failed", "OK"])
    ax.set_ylim(-0.6, 2.4)
    for phase in phases:
        for i, event in enumerate(phase.events):
            x = event.t - t0
            color = _COLORS.get(event.key, "#7f7f7f")
            ax.axvline(x, color=color, lw=1, ls="--", alpha=0.8)
            ax.annotate(event.label, (x, 1.35 + 0.22 * (i % 4)), fontsize=7, color=color,
                        rotation=0, xytext=(3, 0), textcoords="offset points")  # fmt: skip
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    latencies = [(r.start - t0, (r.end - r.start) * 1000) for r in ok]
    if latencies:
        bar.plot(*zip(*latencies, strict=True), ".", ms=3, c="#2ca02c")
    bar.set_ylabel("latency (ms)", fontsize=8)
    bar.set_xlabel("seconds since node-1 was SIGKILLed (request send time)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
