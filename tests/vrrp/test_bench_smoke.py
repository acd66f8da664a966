"""bench/codec.py --quick runs and reports every case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "codec.py"


def test_bench_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["case", "check_packet/s"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["v2", "IPv4"],
        ["v3", "IPv4"],
        ["v3", "IPv6"],
    ]
    for line in lines[1:]:
        assert all(int(n.replace(",", "")) > 0 for n in line.split()[-3:])
