"""Smoke test of the failover benchmark: `bench/failover.py --quick --impl keepalived`."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.lab.keepalived import master_down_interval
from hagate.lab.watch import parse_vrrp

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover.py"


@pytest.mark.lab
@pytest.mark.keepalived
def test_quick_keepalived_run_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--impl", "keepalived", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {(r["version"], r["advert_int"], r["kill"], r["phase"]): r for r in report["failover"]}
    assert set(rows) == {(2, 1.0, "crash", "random"), (2, 1.0, "sigterm", "random"),
                         (3, 0.1, "crash", "random"), (3, 0.1, "sigterm", "random"),
                         (3, 0.1, "crash", "locked")}  # fmt: skip
    for (version, advert_int, kill, phase), row in rows.items():
        assert row["impl"] == "keepalived" and not row["failures"], row
        (garp,) = row["garp_s"]
        (vip,) = row["vip_s"]
        # Master_Down_Interval of n2 (priority 200) bounds a crash; SIGTERM is faster
        mdi = master_down_interval(version, advert_int, 200)
        assert 0 < garp < mdi + 0.5 and 0 < vip < mdi + 0.5, (version, advert_int, kill, garp, vip)
        if kill == "sigterm":
            assert garp < (1.0 if version == 2 else 0.3)
        if phase == "locked":
            # timed from n1's last advert, so n2 waits the whole Master_Down_Interval
            assert row["master_down_s"] == pytest.approx(0.3219, abs=1e-4)
            (lag,) = row["lag_s"]
            (beyond,) = row["beyond_mdi_s"]
            assert 0 < lag < advert_int / 2
            assert beyond == pytest.approx(garp - mdi) and -0.01 < beyond < 0.2
    idle = {(r["instances"], r["role"]): r for r in report["idle"]}
    assert set(idle) == {(1, "master"), (1, "backup"), (10, "master"), (10, "backup")}
    for row in idle.values():
        assert row["failure"] is None and row["processes"] >= 1
        assert row["cpu_s_per_min"] >= 0 and 1 < row["rss_mb"] < 200 and row["pss_mb"] > 0
    assert report["ratios"] == [] and report["beyond_mdi_diffs"] == []  # one implementation


def test_bad_arguments_are_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--impl", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--impl" in done.stderr and "Traceback" not in done.stderr


def _ipv4(proto: int, payload: bytes, src: bytes = bytes([10, 1, 1, 5])) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 255, proto, 0, src,
                         bytes([10, 1, 1, 10]))  # fmt: skip
    return header + payload


def test_parse_vrrp_reads_adverts_and_ignores_the_rest() -> None:
    v3 = bytes([0x31, 51, 250, 1, 0x00, 10, 0, 0]) + bytes([10, 1, 1, 100])
    event = parse_vrrp(_ipv4(112, v3), 1.5, 1.6)
    assert event is not None
    assert (str(event.src), event.version, event.vrid, event.priority) == ("10.1.1.5", 3, 51, 250)
    assert (event.t, event.woke) == (1.5, 1.6)
    v2 = bytes([0x21, 7, 0, 1, 0, 1, 0, 0]) + bytes(12)
    event = parse_vrrp(_ipv4(112, v2), 2.0)
    assert event is not None and (event.version, event.vrid, event.priority) == (2, 7, 0)
    assert parse_vrrp(_ipv4(17, v3), 0.0) is None  # not protocol 112
    assert parse_vrrp(_ipv4(112, bytes([0x41]) + v3[1:]), 0.0) is None  # version 4
    assert parse_vrrp(_ipv4(112, bytes([0x32]) + v3[1:]), 0.0) is None  # type 2
    assert parse_vrrp(_ipv4(112, v3[:4]), 0.0) is None  # truncated
