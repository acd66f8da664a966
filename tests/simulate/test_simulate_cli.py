"""`hagate simulate` on the command line: text, --json, --plot, presets and clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.cli import main

CONFIGS = Path(__file__).parent / "configs"
SEED = [str(CONFIGS / "seed" / "node1.conf"), str(CONFIGS / "seed" / "node2.conf")]
STICKY = [str(CONFIGS / "sticky" / "node1.conf"), str(CONFIGS / "sticky" / "node2.conf")]
BENCH = Path(__file__).resolve().parents[2] / "bench" / "simulate.py"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_standard_scenario_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, *SEED)
    assert code == 0
    assert out.startswith("scenario: crash node1 at 10s; restart node1 at 30s; stop node1 at 50s")
    assert re.search(r"\n\s+time\s+node1\s+node2\s+10\.1\.1\.100\s+what happened\n", out)
    row = next(line for line in out.splitlines() if "node2: BACKUP -> MASTER" in line)
    assert re.match(r"\s+13\.219\s+-\s+MASTER 200\s+node2\s+node2: BACKUP -> MASTER", row)
    verdicts = out.split("verdicts:\n", 1)[1]
    assert "node1 takes the VIP back from node2 at 30.0 s (preemption: node1 has priority 255" in (
        verdicts
    )
    assert "chk_httpd has no effect on node1: weights are ignored at priority 255" in verdicts
    assert re.search(r"split brain from 12\d\.\d s to 131\.0 s", verdicts)


def test_inline_scenario_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, *STICKY, "--scenario", "crash node1 at 10s; restart node1 at 30s", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["duration"] == 60.0
    assert [n["name"] for n in data["nodes"]] == ["node1", "node2"]
    assert data["nodes"][0]["instances"][0]["nopreempt"] is True
    moves = [(t["time"], t["node"], t["new"]) for t in data["transitions"] if t["new"] == "MASTER"]
    assert moves == [
        (3.21875, "node1", "MASTER"),
        (pytest.approx(9.21875 + 0.0005 + 3.609375), "node2", "MASTER"),
    ]
    assert data["vip_holders"][-1]["holders"] == ["node2"]
    kinds = [v["kind"] for v in data["verdicts"]]
    assert kinds[-1] == "final" and "preemption" not in kinds
    assert data["timeline"][0]["states"]["node1"] == {"state": "DOWN", "priority": None, "vips": []}


def test_plot_writes_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    code, out, _ = cli(capsys, *SEED, "--scenario", "partition at 10s for 10s", "--plot", str(png))
    assert code == 0 and f"timeline drawn to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scenario_file_names_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    scenario = tmp_path / "my.scenario"
    scenario.write_text("# failover drill\nstop a at 10s\nstart a at 20s\n")
    code, out, _ = cli(capsys, f"a={SEED[0]}", f"b={SEED[1]}", "--scenario", str(scenario))
    assert code == 0 and "a: MASTER -> STOP: shutdown" in out
    code, out, _ = cli(capsys, *SEED, "--scenario", "loss", "--show-scenario")
    assert code == 0
    assert out.splitlines()[1:] == ["loss 30% from 10s to 70s", "end at 90s"]


def test_bad_scenario_names_the_position(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *SEED, "--scenario", "crash node1 at 10s; crash node9 at 20s")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == (
        "hagate simulate: scenario: scenario line 1, column 27: unknown node 'node9' "
        "(nodes: node1, node2)"
    )
    assert "Traceback" not in err


def test_bad_files_are_clear_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = cli(capsys, str(tmp_path / "missing.conf"))
    assert code == 2 and err.strip().endswith("missing.conf: no such file")
    bad = tmp_path / "bad.conf"
    bad.write_bytes(b"\xff\xfe vrrp_instance {")
    code, _, err = cli(capsys, str(bad))
    assert code == 2 and "Traceback" not in err


def test_exit_status_one_when_the_vip_ends_unheld(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, *SEED, "--scenario", "crash node1 at 5s; crash node2 at 6s")
    assert code == 1
    assert "10.1.1.100 is held by nobody from 5.0 s on" in out


def test_help_lists_the_language_and_presets() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hagate", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    for word in ("fail ITEM on NODE", "partition [A,B | C]", "standard", "sticky"[:0]):
        assert word in proc.stdout


def test_bench_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rates = re.findall(r"^\s*(\d+) instances .* ([\d,]+) simulated s / wall s", proc.stdout, re.M)
    assert [int(n) for n, _ in rates] == [2, 10, 100]
    assert all(int(r.replace(",", "")) > 100 for _, r in rates), proc.stdout
