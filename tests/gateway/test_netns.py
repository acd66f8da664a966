"""The gateway and an agent in two network namespaces of their own, joined by a veth pair:
the gateway listens on a given address, the agent dials it (as it would dial the VIP)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.pki.ca import Role, init_ca, issue

from .kit import OPEN_POLICY

pytestmark = pytest.mark.lab

GW_ADDR = "10.231.77.1"
DEV_ADDR = "10.231.77.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for network namespaces")
    tag = uuid.uuid4().hex[:6]
    gw, dev = f"hgw-{tag}-g", f"hgw-{tag}-d"
    try:
        _ip("netns", "add", gw)
        _ip("netns", "add", dev)
        # Both ends are created inside the namespaces: nothing touches the host's.
        _ip("-n", gw, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", dev)
        for ns, addr in ((gw, GW_ADDR), (dev, DEV_ADDR)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield gw, dev
    finally:
        for ns in (gw, dev):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _in(ns: str, *argv: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_gateway_and_agent_in_namespaces(tmp_path: Path, namespaces: tuple[str, str]) -> None:
    gw_ns, dev_ns = namespaces
    pki = tmp_path / "pki"
    init_ca(pki)
    issue(pki, Role.SERVER, "gw", dns=["gw.test", "*.gw.test"], ips=[GW_ADDR])
    issue(pki, Role.DEVICE, "dev1")
    (tmp_path / "gateway.toml").write_text(
        f"""domain = "gw.test"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/server/gw/cert.pem"
key = "pki/issued/server/gw/key.pem"
[listen]
tunnel = "{GW_ADDR}:7443"
http = "0.0.0.0:8080"
admin = "127.0.0.1:9180"
[tcp.pinned]
"dev1/ssh" = 20022
[policy]
file = "policy.toml"
"""
    )
    (tmp_path / "policy.toml").write_text(OPEN_POLICY)
    (tmp_path / "agent.toml").write_text(
        f"""gateway = "{GW_ADDR}:7443"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/device/dev1/cert.pem"
key = "pki/issued/device/dev1/key.pem"
[[service]]
name = "http"
type = "http"
target = "127.0.0.1:8000"
[[service]]
name = "ssh"
type = "tcp"
target = "127.0.0.1:8000"
"""
    )
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello.txt").write_text("hello from the device namespace\n")
    procs = [
        _in(dev_ns, "-m", "http.server", "--bind", "127.0.0.1", "8000", cwd=tmp_path / "www"),
        _in(gw_ns, "-m", "hagate", "gateway", "-c", "gateway.toml", cwd=tmp_path),
        _in(dev_ns, "-m", "hagate", "agent", "-c", "agent.toml", cwd=tmp_path),
    ]
    probe = (
        "import sys, time, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1], headers={'Host': 'dev1.gw.test'})\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        print(urllib.request.urlopen(req, timeout=2).read().decode(), end='')\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
    )
    try:
        for url in (f"http://{GW_ADDR}:8080/hello.txt", f"http://{GW_ADDR}:20022/hello.txt"):
            out = subprocess.run(
                ["ip", "netns", "exec", gw_ns, sys.executable, "-c", probe, url],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert out.stdout == "hello from the device namespace\n", (url, out.stderr)
        check = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                gw_ns,
                sys.executable,
                "-m",
                "hagate",
                "gateway",
                "check",
                "-q",
                "-c",
                "gateway.toml",
            ],
            cwd=tmp_path,
            timeout=10,
            check=False,
        )
        assert check.returncode == 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        time.sleep(0.1)
