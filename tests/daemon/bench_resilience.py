"""Production faults, hagate against keepalived 2.2.7, side by side in one run.

Run by hand as root (not collected by pytest):

    .venv/bin/python tests/daemon/bench_resilience.py [--trials N] [--flood]

Rows: the master's interface deleted and re-created (seconds from its return until the
master holds the VIP again, the backup not), a VIP deleted by hand on the master (seconds
until it is back), and with ``--flood`` a flood of invalid frames at a hagate backup (frames
sent, dropped by its kernel, VIP taken or not). To measure an older hagate, put its source
first on PYTHONPATH (the daemons are started with ``python -m hagate``).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.resilience import NODES, Recovery, flood, interface_recreated, vip_deleted
from hagate.lab import Lab, LabError


def trial(scenario: Callable[[Lab, str], Recovery], impl: str) -> float:
    """Seconds to recover; inf if it did not within the scenario's bound."""
    with Lab.create(prefix="hgtq", nodes=NODES) as lab:
        try:
            return scenario(lab, impl).seconds
        except LabError:
            return math.inf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--flood", action="store_true", help="also the flood row (hagate only)")
    ap.add_argument("--rate", type=float, default=60000)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    impls = ["hagate"] + (["keepalived"] if shutil.which("keepalived") else [])
    print(f"{'scenario':<28} {'daemon':<11} {'median s':>9} {'max s':>7}  trials")
    rows = (("interface re-created", interface_recreated), ("VIP deleted", vip_deleted))
    for name, scenario in rows:
        for impl in impls:
            secs = [trial(scenario, impl) for _ in range(args.trials)]
            print(
                f"{name:<28} {impl:<11} {statistics.median(secs):>9.3f} {max(secs):>7.3f}  "
                + " ".join(f"{s:.3f}" for s in secs)
            )
    if args.flood:
        nodes = {**NODES, "f": "10.1.1.66/24"}
        for _ in range(args.trials):
            with Lab.create(prefix="hgtq", nodes=nodes) as lab:
                r = flood(lab, rate=args.rate, seconds=args.seconds)
            print(
                f"flood {args.rate:.0f}/s {args.seconds:g} s: sent {r.sent}, kernel drops "
                f"{r.kernel_drops}, backup took the VIP {r.backup_transitions} time(s)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
