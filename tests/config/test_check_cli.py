"""`hagate check` end to end: output format, exit codes, --json, --dump, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.cli import main

CORPUS = Path(__file__).parent / "corpus"
SEED = [str(CORPUS / "seed" / "master.conf"), str(CORPUS / "seed" / "standby.conf")]


def test_seed_pair_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", *SEED])
    out = capsys.readouterr().out
    assert code == 4  # track_script at top level is an error keepalived would run past
    assert f"{SEED[0]}:31: track_script: track_script at top level: it belongs inside" in out
    assert f"{SEED[0]}:6: advert_int: warning: '(seconds)' is an annotation" in out
    cluster = out.split("cluster: ", 1)[1]
    assert "When master.conf recovers it takes the VIP back from standby.conf" in cluster
    assert "despite standby.conf's nopreempt" in cluster
    assert "'state BACKUP' and 'nopreempt', and priorities below 255" in cluster


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--json", "--no-script-files", *SEED])
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == code == 4
    first = data["findings"][0]
    assert set(first) == {"severity", "file", "line", "keyword", "message", "exit_code"}
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert [(Path(f["file"]).name, f["line"], f["keyword"]) for f in errors] == [
        ("master.conf", 31, "track_script"),
        ("standby.conf", 31, "track_script"),
    ]
    assert data["cluster"] and "nopreempt" in data["cluster"][0]


def test_dump_fills_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--dump", str(CORPUS / "doc_unicast.conf")]) == 0
    out = capsys.readouterr().out
    for line in (
        "        priority 100",
        "        advert_int 1",
        "        garp_master_delay 5",
        "        down_timer_adverts 3",
        "        auth_type NONE",
        "        master_down_interval 3.60938",
    ):
        assert line in out.splitlines(), line
    main(["check", "--dump", "--json", str(CORPUS / "doc_unicast.conf")])
    data = json.loads(capsys.readouterr().out)
    (vi,) = data["configs"][0]["vrrp_instances"]
    assert vi["unicast_peers"] == [{"address": "10.1.1.10", "min_ttl": 250, "max_ttl": 255}]


@pytest.mark.parametrize(
    ("files", "code"),
    [
        (["doc_vrrp_basic.conf"], 0),
        (["broken_nopreempt_master.conf"], 4),
        (["cluster_mismatch/a.conf", "cluster_mismatch/b.conf"], 1),
        (["does-not-exist.conf"], 3),
        (["doc_vrrp_basic.conf", "broken_v3_auth.conf", "does-not-exist.conf"], 3),
    ],
)
def test_exit_codes(files: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--no-script-files", *(str(CORPUS / f) for f in files)]) == code


def test_help_and_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hagate", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "exit status" in proc.stdout and "--dump" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "hagate", "check", str(CORPUS / "broken_unclosed.conf")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "broken_unclosed.conf:1: vrrp_instance: block opened here is never closed" in proc.stdout
