"""Status views: text, Prometheus exposition, the Unix socket round trip, CLI errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.daemon.status import (
    StatusError,
    StatusServer,
    format_text,
    parse_host_port,
    prometheus_text,
    query,
)

SNAP = {
    "pid": 42,
    "config": "/etc/keepalived/keepalived.conf",
    "instances": [
        {
            "name": "VI_1",
            "vrid": 51,
            "interface": "eth0",
            "version": 2,
            "family": 4,
            "state": "BACKUP",
            "base_priority": 200,
            "effective_priority": 150,
            "master": "10.1.1.5",
            "vips": ["10.1.1.100/24"],
            "last_transition": {
                "at": 1000.0,
                "old": "INITIALIZE",
                "new": "BACKUP",
                "reason": "startup: waiting Master_Down_Interval for a master, 3.219 s",
            },
            "counters": {
                "adverts_in": 7,
                "adverts_out": 0,
                "garps_sent": 0,
                "transitions": 1,
                "discards": {"auth_password_mismatch": 3},
            },
            "scripts": [{"name": "chk_httpd", "status": "failed", "weight": -50}],
        }
    ],
    "discards_unknown_vrid": 2,
}


def test_text_view() -> None:
    text = format_text(SNAP, now=1002.5)
    assert "VI_1: BACKUP  (VID" not in text
    assert "VI_1: BACKUP  (VRID 51 on eth0, VRRPv2, IPv4)" in text
    assert "priority      150 (base 200)" in text
    assert "master        10.1.1.5" in text
    assert "INITIALIZE -> BACKUP 2.5 s ago: startup" in text
    assert "discarded     auth_password_mismatch 3" in text
    assert "script        chk_httpd: failed (weight -50)" in text


def test_prometheus_exposition() -> None:
    text = prometheus_text(SNAP)
    labels = 'instance_name="VI_1",vrid="51",interface="eth0"'
    assert f'hagate_vrrp_state{{{labels},state="BACKUP"}} 1' in text
    assert f'hagate_vrrp_state{{{labels},state="MASTER"}} 0' in text
    assert f"hagate_vrrp_effective_priority{{{labels}}} 150" in text
    assert f'hagate_vrrp_discards_total{{{labels},reason="auth_password_mismatch"}} 3' in text
    assert f'hagate_vrrp_script_ok{{{labels},script="chk_httpd"}} 0' in text
    assert "hagate_vrrp_unknown_vrid_total 2" in text
    for line in text.splitlines():  # every sample line is "name{labels} value"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_socket_round_trip(tmp_path: Path) -> None:
    async def go() -> dict[str, object]:
        server = StatusServer(tmp_path / "vrrp.sock", lambda: SNAP)
        await server.start()
        try:
            return await asyncio.get_running_loop().run_in_executor(None, query, tmp_path)
        finally:
            await server.close()

    assert asyncio.run(go()) == SNAP
    assert not (tmp_path / "vrrp.sock").exists()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StatusError, match="no hagate vrrp daemon running"):
        query(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "hagate", "vrrp", "status", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "no hagate vrrp daemon running" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9650", ("127.0.0.1", 9650)), ("[::1]:80", ("::1", 80)), (":9", ("127.0.0.1", 9))],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


def test_parse_host_port_rejects() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port("localhost")


def _daemon(tmp_path: Path, conf: str, *extra: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "k.conf"
    path.write_text(conf)
    run = str(tmp_path / "run")
    argv = [sys.executable, "-m", "hagate", "vrrp", "-f", str(path), "--run-dir", run]
    proc = subprocess.run(
        [*argv, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_bad_config_refused_without_traceback(tmp_path: Path) -> None:
    err = _daemon(tmp_path, "vrrp_instance VI_1 {\n  interface eth0\n")
    assert "configuration refused" in err or "no vrrp_instance" in err
    err = _daemon(tmp_path, "")
    assert "no vrrp_instance" in err


def test_lab_guard_refuses_outside_the_namespace(tmp_path: Path) -> None:
    import os

    conf = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 5\n}\n"
    env = {**os.environ, "HAGATE_LAB_NETNS": "hgtd-surely-not-here"}
    err = _daemon(tmp_path, conf, env=env)
    assert "hgtd-surely-not-here" in err
    assert not (tmp_path / "run" / "vrrp.pid").exists()
