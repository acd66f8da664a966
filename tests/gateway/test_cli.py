"""The commands as users run them: pki, gateway, agent, connect and check, as processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.cli import main

from .kit import OPEN_POLICY, echo_roundtrip, echo_service, free_port, http_get, http_service

HAGATE = [sys.executable, "-m", "hagate"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HAGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def _wait_port(port: int, timeout: float = 10) -> None:
    import socket

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _wait_agents(admin: int, timeout: float = 10) -> None:
    """Until the gateway's /healthz counts an agent (TCP ports listen before agents attach)."""
    import json
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1) as r:
                if json.loads(r.read()).get("agents", 0) >= 1:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("no agent attached")


def test_end_to_end_processes(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    assert _run("pki", "init", cwd=tmp_path).returncode == 0
    r = _run(
        "pki",
        "issue",
        "gw",
        "--server",
        "--dns",
        "gw.test",
        "--dns",
        "*.gw.test",
        "--ip",
        "127.0.0.1",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert _run("pki", "issue", "dev1", cwd=tmp_path).returncode == 0
    assert _run("pki", "issue", "alice", "--user", cwd=tmp_path).returncode == 0
    again = _run("pki", "issue", "dev1", cwd=tmp_path)
    assert again.returncode == 1 and "already issued" in again.stderr
    tunnel, http, admin, tcp = free_port(), free_port(), free_port(), free_port()
    (tmp_path / "gateway.toml").write_text(
        f"""
domain = "gw.test"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/server/gw/cert.pem"
key = "pki/issued/server/gw/key.pem"
crl = "pki/crl.pem"
[listen]
tunnel = "127.0.0.1:{tunnel}"
http = "127.0.0.1:{http}"
admin = "127.0.0.1:{admin}"
[tcp]
listen = "127.0.0.1"
[tcp.pinned]
"dev1/ssh" = {tcp}
[policy]
file = "policy.toml"
"""
    )
    (tmp_path / "policy.toml").write_text(OPEN_POLICY)

    async def services() -> None:
        web, web_port = await http_service("dev1")
        echo, echo_port = await echo_service()
        (tmp_path / "agent.toml").write_text(
            f"""
gateway = "127.0.0.1:{tunnel}"
server_name = "gw.test"
[tls]
ca = "pki/issued/device/dev1/ca.crt"
cert = "pki/issued/device/dev1/cert.pem"
key = "pki/issued/device/dev1/key.pem"
[[service]]
name = "http"
type = "http"
target = "127.0.0.1:{web_port}"
[[service]]
name = "ssh"
type = "tcp"
target = "127.0.0.1:{echo_port}"
[reconnect]
fast_retries = 5
fast_delay_ms = 100
"""
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        gw = subprocess.Popen([*HAGATE, "gateway", "-c", "gateway.toml"], cwd=tmp_path, env=env)
        procs.append(gw)
        await asyncio.to_thread(_wait_port, admin)
        procs.append(subprocess.Popen([*HAGATE, "agent", "-c", "agent.toml"], cwd=tmp_path))
        await asyncio.to_thread(_wait_agents, admin)
        assert await http_get(http, "dev1.gw.test", "/p") == (200, b"hello from dev1 /p")
        assert await echo_roundtrip(tcp, b"tcp ok") == b"tcp ok"
        check = ["gateway", "check", "-c", str(tmp_path / "gateway.toml"), "-q"]
        assert await asyncio.to_thread(main, check) == 0
        # connect: a local port for a user
        # alice's user certificate and the gateway's tunnel port, for `hagate connect`
        alice = [
            *("--gateway", f"127.0.0.1:{tunnel}", "--server-name", "gw.test"),
            *("--ca", "pki/ca.crt", "--cert", "pki/issued/user/alice/cert.pem"),
            *("--key", "pki/issued/user/alice/key.pem"),
        ]
        local = free_port()
        procs.append(
            subprocess.Popen(
                [*HAGATE, "connect", "dev1:ssh", "--local", str(local), *alice],
                cwd=tmp_path,
            )
        )
        await asyncio.to_thread(_wait_port, local)
        assert await echo_roundtrip(local, b"via connect") == b"via connect"
        # --stdio, as ssh's ProxyCommand uses it: stdin -> device, device -> stdout.
        stdio = await asyncio.to_thread(
            subprocess.run,
            [*HAGATE, "connect", "dev1:ssh", "--stdio", *alice],
            cwd=tmp_path,
            input=b"over stdio" * 1000,
            capture_output=True,
            timeout=20,
        )
        assert stdio.returncode == 0, stdio.stderr
        assert stdio.stdout == b"over stdio" * 1000
        # Kill the gateway hard: check fails fast; restart it: the agent comes back.
        gw.send_signal(signal.SIGKILL)
        gw.wait(5)
        t0 = time.monotonic()
        assert await asyncio.to_thread(main, check) == 1
        assert time.monotonic() - t0 < 2
        gw2 = subprocess.Popen([*HAGATE, "gateway", "-c", "gateway.toml"], cwd=tmp_path, env=env)
        procs.append(gw2)
        await asyncio.to_thread(_wait_agents, admin, 15)
        assert await echo_roundtrip(tcp, b"back") == b"back"
        assert await http_get(http, "dev1.gw.test") == (200, b"hello from dev1 /")
        gw2.send_signal(signal.SIGTERM)
        assert gw2.wait(5) == 0
        web.close()
        echo.close()

    asyncio.run(services())


def test_config_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "-c", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('domain = "x"\n[tls]\nca = "a"\n')
    assert main(["gateway", "-c", str(bad)]) == 2
    assert "needs ca, cert and key" in capsys.readouterr().err
    bad.write_text('domain = "x"\nlisten = 3\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n')
    assert main(["gateway", "-c", str(bad)]) == 2
    assert "expected dict" in capsys.readouterr().err
    bad.write_text("gateway = 'h:1'\n[tls]\nca='a'\ncert='b'\nkey='c'\n")
    assert main(["agent", "-c", str(bad)]) == 2
    assert "at least one [[service]]" in capsys.readouterr().err
    bad.write_text(
        "gateway = 'h:1'\n[tls]\nca='a'\ncert='b'\nkey='c'\n"
        "[[service]]\nname='web'\ntype='http'\ntarget='127.0.0.1:80'\n"
    )
    assert main(["agent", "-c", str(bad)]) == 1  # certificate files do not exist
    assert "cannot load TLS files" in capsys.readouterr().err
    assert main(["connect", "nocolon", "--local", "1"]) == 2
    assert main(["connect", "dev1:ssh", "--local", "1"]) == 2
    assert "--gateway" in capsys.readouterr().err


def test_check_without_gateway_fails_fast() -> None:
    t0 = time.monotonic()
    assert main(["gateway", "check", "--url", f"http://127.0.0.1:{free_port()}/healthz", "-q"]) == 1
    assert time.monotonic() - t0 < 1.5
