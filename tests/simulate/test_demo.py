"""`hagate lab demo --simulated`: the core demo prints a readable, correct timeline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hagate.simulate.demo import run_core_demo


def test_demo_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_core_demo() == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    order = [
        "node-1   INITIALIZE -> MASTER: startup: address owner (priority 255)",
        "node-2   INITIALIZE -> BACKUP",
        "node-1   crash (VIPs lost)",
        "node-2   BACKUP -> MASTER: master down timer expired: no advert from 10.1.1.5 for 3.22 s",
        "node-1   restart",
        "node-2   MASTER -> BACKUP: higher priority advert from 10.1.1.5 (255 > 200)",
    ]
    positions = [next(i for i, line in enumerate(lines) if want in line) for want in order]
    assert positions == sorted(positions)
    assert "   13.219s  node-2   add VIPs 10.1.1.100" in out
    assert "now: MASTER node-1; VIP on node-1" in out


def test_demo_through_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hagate", "lab", "demo", "--simulated"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "node-2 took over" in proc.stdout
