"""bench/handshake.py --quick runs end to end (seconds) and its tables say what they should.

Asserted beyond the tables being there: resumption really happens against hagate's real
gateway process (the resumed row resumes nearly every handshake), a session from one context
resumes on a second one made from the same files (the other node), and with tickets off,
as before, it does not. CPU figures are printed, not asserted: the machine is shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "handshake.py"


def test_bench_handshake_quick(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--seconds", "0.5", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "In-process, one handshake" in proc.stdout
    assert "Loopback, server in its own process" in proc.stdout
    rows = json.loads(out.read_text())
    split = {r["name"]: r for r in rows["breakdown"]}
    assert split["resumed, other node's context"]["resumed"] == 1.0
    assert split["other node, as before"]["resumed"] == 0.0
    assert split["full, hagate tickets on"]["resumed"] == 0.0
    loops = {(r["server"], r["mode"]): r for r in rows["loopback"]}
    resumed = loops["hagate", "resumed"]
    assert resumed["handshakes"] > 10 and resumed["resumed"] >= 0.9 * resumed["handshakes"]
    full = loops["hagate", "full"]
    assert full["handshakes"] > 10 and full["resumed"] == 0
    assert loops["hagate, resumption off", "full"]["handshakes"] > 10
