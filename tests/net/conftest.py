"""Fixtures for hagate.net: a small PKI, and socket pairs that need no network."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hagate.net.conn import Conn
from hagate.net.tls import client_context, tunnel_server_context
from hagate.pki.ca import Role, init_ca, issue

T = TypeVar("T")


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def bundle(self, role: str, name: str) -> Path:
        return self.dir / "issued" / role / name


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, the gateway's server certificate (for "localhost") and device dev1's."""
    root = tmp_path_factory.mktemp("net-pki")
    init_ca(root)
    issue(root, Role.SERVER, "gateway", dns=["localhost"])
    issue(root, Role.DEVICE, "dev1")
    return Pki(root)


def run(coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
    """Run one test's coroutine; a hang fails in ``timeout`` seconds instead of pytest's 120."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def small_pair(buf: int = 4096) -> tuple[socket.socket, socket.socket]:
    """A connected AF_UNIX pair with small kernel buffers, so that writes go partial soon."""
    a, b = socket.socketpair()
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buf)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buf)
        s.setblocking(False)
    return a, b


async def read_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from a non-blocking plain socket (the test's side of a pair)."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        if not chunk:
            raise EOFError(f"end of stream after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


async def read_all(sock: socket.socket) -> bytes:
    """Everything until end of stream."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    while chunk := await loop.sock_recv(sock, 65536):
        out += chunk
    return bytes(out)


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` reproducible random bytes: a lost, doubled or reordered chunk would show."""
    return random.Random(seed).randbytes(n)


def address(sock: socket.socket) -> tuple[str, int]:
    """A listener's (host, port), typed."""
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def registered(loop: asyncio.AbstractEventLoop, fd: int) -> tuple[bool, bool]:
    """(reader, writer) registered for ``fd`` on the loop's selector."""
    selector = loop._selector  # type: ignore[attr-defined]
    try:
        key = selector.get_key(fd)
    except KeyError:
        return False, False
    return key.data[0] is not None, key.data[1] is not None


def tls_pair(pki: Pki) -> tuple[Conn, Conn]:
    """(client, server) Conns over a socketpair, before the handshake."""
    srv = pki.bundle("server", "gateway")
    dev = pki.bundle("device", "dev1")
    server_ctx = tunnel_server_context(srv / "cert.pem", srv / "key.pem", pki.ca)
    client_ctx = client_context(dev / "cert.pem", dev / "key.pem", pki.ca)
    a, b = socket.socketpair()
    client = client_ctx.wrap_socket(a, server_hostname="localhost", do_handshake_on_connect=False)
    server = server_ctx.wrap_socket(b, server_side=True, do_handshake_on_connect=False)
    return Conn(client), Conn(server)
