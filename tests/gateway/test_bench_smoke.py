"""bench/tunnel.py --quick runs end to end and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tunnel.py"


def test_bench_tunnel_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--seconds", "0.5", "--agents", "50"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    bulk = re.search(r"bulk 1 stream user->device \(Gbit/s\)\s+([\d.]+)\s+([\d.]+)", out)
    assert bulk and float(bulk.group(2)) > 0.05, out
    rps = re.search(r"HTTP keep-alive 1 conn \(req/s\)\s+([\d,.]+)\s+([\d,.]+)", out)
    assert rps and float(rps.group(2).replace(",", "")) > 50, out
    per_agent = re.search(r"gateway RSS per idle agent \(KiB\)\s+-\s+([\d.]+)", out)
    assert per_agent, out
    assert "50 idle agents connected" in out
