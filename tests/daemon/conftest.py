"""Fixtures for the daemon tests: a private two-namespace veth pair (root only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PY = sys.executable


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


@dataclass(frozen=True)
class Pair:
    """Namespaces ``a`` and ``b`` joined by a veth (``eth0`` in each)."""

    a: str
    b: str

    def run(self, ns: str, code: str, timeout: float = 20) -> str:
        """Run Python ``code`` inside namespace ``ns``; return its stdout (fails on error)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, PY, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            pytest.fail(f"in {ns}: exit {proc.returncode}\n{proc.stderr}")
        return proc.stdout

    def sh(self, ns: str, *argv: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True
        ).stdout


def _wait_link_up(*namespaces: str, timeout: float = 5.0) -> None:
    """Wait for operstate UP (linkwatch): until then the veth drops what we send."""
    deadline = time.monotonic() + timeout
    for ns in namespaces:
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["ip", "-n", ns, "link", "show", "eth0"], capture_output=True, text=True
            ).stdout
            if "state UP" in out:
                break
            time.sleep(0.02)


@pytest.fixture
def pair() -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    tag = uuid.uuid4().hex[:6]
    p = Pair(a=f"hgtd-{tag}-a", b=f"hgtd-{tag}-b")
    try:
        _ip("netns", "add", p.a)
        _ip("netns", "add", p.b)
        _ip("-n", p.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.b)
        for ns, n in ((p.a, 1), (p.b, 2)):
            # inside our own namespace only: no DAD delay for the link-local address
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"],
                check=False,
                capture_output=True,
            )
            _ip("-n", ns, "addr", "add", f"10.9.0.{n}/24", "dev", "eth0")
            _ip("-n", ns, "addr", "add", f"fd09::{n}/64", "dev", "eth0", "nodad")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        _wait_link_up(p.a, p.b)
        yield p
    finally:
        _ip("netns", "del", p.a, check=False)
        _ip("netns", "del", p.b, check=False)
