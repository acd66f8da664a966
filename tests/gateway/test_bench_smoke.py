"""bench/tunnel.py --quick runs end to end and prints its tables.

Besides the figures being there, two behaviours are asserted, since the bench is the one place
that drives the gateway with real processes and keep-alive load: the guarded route refuses a
request without credentials and admits one with a password or a user certificate (else the
authentication rows say "not measured"), and on connections that alternate between two
devices' Hosts every answer comes from the device its Host names.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tunnel.py"
NUM = r"([\d,.]+)"


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_bench_tunnel_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--seconds", "0.4", "--agents", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    bulk = re.search(r"bulk 1 stream user->device \(Gbit/s\)\s+([\d.]+)\s+([\d.]+)", out)
    assert bulk and float(bulk.group(2)) > 0.05, out
    for conns in (1, 32):
        rps = re.search(rf"HTTP keep-alive {conns} conn \(req/s\)\s+{NUM}\s+{NUM}", out)
        assert rps and number(rps.group(2)) > 50, out
    floors = re.findall(r"^  same via raw TCP route \(req/s\)\s+-\s+([\d,.]+)", out, re.M)
    assert len(floors) == 2 and all(number(f) > 50 for f in floors), out
    per_agent = re.search(r"gateway RSS per idle agent \(KiB\)\s+-\s+([\d.]+)", out)
    assert per_agent, out
    assert "50 idle agents connected" in out

    assert "not measured" not in out, out
    for route in ("http basic auth", "https client cert"):
        for conns in (1, 32):
            row = re.search(
                rf"^{route} {conns} conn\s+bench\s+{NUM}\s+{NUM}\s+[-+][\d.]+%.*\s(\d+)/(\d+)$",
                out,
                re.M,
            )
            assert row, out
            assert number(row.group(1)) > 50 and number(row.group(2)) > 50, row.group(0)
            assert row.group(3) == row.group(4) == "0", row.group(0)  # no errors either side
    for conns in (1, 32):
        row = re.search(
            rf"^HTTP mixed Hosts {conns} conn\s+bench\s+{NUM}\s+{NUM}\s.*\s(\d+)\s+(\d+)/(\d+)$",
            out,
            re.M,
        )
        assert row, out
        assert number(row.group(2)) > 50, row.group(0)
        assert row.group(3) == "0", row.group(0)  # every answer from the device its Host names
        assert row.group(4) == row.group(5) == "0", row.group(0)

    targets = out[out.index("targets (issues 10 and 11)") :]
    for name in (
        "HTTP keep-alive 1 conn req/s",
        "HTTP keep-alive 32 conn req/s",
        "HTTP keep-alive 1 conn p99",
        "bulk 1 stream",
        "idle agent memory",
        "http basic auth 1 conn cost",
        "https client cert 32 conn cost",
        "HTTP mixed Hosts 32 conn: wrong device",
    ):
        line = re.search(rf"^{re.escape(name)}\s.*\s(PASS|MISS|n/a)$", targets, re.M)
        assert line, targets
    ssh_rows = re.findall(r"^(?:HTTP keep-alive \d+ conn req/s|bulk 1 stream)\s.*$", targets, re.M)
    assert all(r.endswith("n/a") for r in ssh_rows), ssh_rows  # no ssh in --quick
    assert re.search(r"^HTTP mixed Hosts 1 conn: wrong device\s.*PASS$", targets, re.M), targets
