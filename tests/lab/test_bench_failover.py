"""Smoke test of the failover benchmark: `bench/failover.py --quick --impl keepalived`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.keepalived]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover.py"


def test_quick_keepalived_run_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--impl", "keepalived", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {(r["version"], r["advert_int"], r["kill"]): r for r in report["failover"]}
    assert set(rows) == {(2, 1.0, "crash"), (2, 1.0, "sigterm"), (3, 0.1, "crash"),
                         (3, 0.1, "sigterm")}  # fmt: skip
    for (version, advert_int, kill), row in rows.items():
        assert row["impl"] == "keepalived" and not row["failures"], row
        (garp,) = row["garp_s"]
        (vip,) = row["vip_s"]
        # Master_Down_Interval of n2 (priority 200) bounds a crash; SIGTERM is faster
        limit = 3 * advert_int + (56 / 256) * (advert_int if version == 3 else 1) + 0.5
        assert 0 < garp < limit and 0 < vip < limit, (version, advert_int, kill, garp, vip)
        if kill == "sigterm":
            assert garp < (1.0 if version == 2 else 0.3)
    idle = {(r["instances"], r["role"]): r for r in report["idle"]}
    assert set(idle) == {(1, "master"), (1, "backup"), (10, "master"), (10, "backup")}
    for row in idle.values():
        assert row["failure"] is None and row["processes"] >= 1
        assert row["cpu_s_per_min"] >= 0 and 1 < row["rss_mb"] < 200 and row["pss_mb"] > 0
    assert report["ratios"] == []  # only one implementation ran


def test_bad_arguments_are_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--impl", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--impl" in done.stderr and "Traceback" not in done.stderr
