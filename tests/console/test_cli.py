"""`hagate console`: its options' errors, and the process itself on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hagate.cli import main
from hagate.console.nodes import NodeTarget


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "at least one --node"),
        (["--node", "n1"], "NAME=HOST:PORT"),
        (["--node", "n1=host"], "is not HOST:PORT"),
        (["--node", "n1=h:1,colour=red"], "unknown option"),
        (["--node", "n1=h:1", "--node", "n1=h:2"], "same name"),
        (["--node", "n1=h:1", "--cert", "c.pem"], "go together"),
        (["--node", "n1=h:1", "--listen", "nowhere"], "HOST:PORT"),
    ],
)
def test_bad_options_say_why(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["console", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hagate console: ") and message in err, err
    assert "Traceback" not in err


def test_node_target_parse() -> None:
    t = NodeTarget.parse("node-1=10.0.0.5:9180,run=/run/hagate")
    assert (t.name, t.admin, t.run_dir) == ("node-1", ("10.0.0.5", 9180), Path("/run/hagate"))
    assert NodeTarget.parse("n=[::1]:80").admin == ("::1", 80)
    assert NodeTarget.parse("n=,run=/r").admin is None


def test_the_process_serves_the_page_and_stops_on_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "hagate", "console", "--listen", "127.0.0.1:0"]
    argv += ["--node", f"n1=,run={tmp_path}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("hagate console on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        with urllib.request.urlopen(url, timeout=5) as res:
            assert res.status == 200 and b"/static/app.js" in res.read()
        with urllib.request.urlopen(url + "static/app.js", timeout=5) as res:
            assert "text/javascript" in res.headers["Content-Type"]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url + "api/cluster", timeout=5)
        assert info.value.code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert proc.stderr is not None
        assert "no --policy: nobody can log in" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
