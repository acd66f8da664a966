"""bench/machine.py --quick runs and reports plausible rates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "machine.py"


def test_bench_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rates = [int(r.replace(",", "")) for r in re.findall(r"([\d,]+) inputs/s", proc.stdout)]
    assert len(rates) == 2
    assert all(rate > 1000 for rate in rates), proc.stdout
