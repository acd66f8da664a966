"""The gateway test kit on a :class:`~hagate.net.backend.MemoryBackend`: no port, no network.

A real Gateway and real Agents (TLS, the tunnel protocol, pipes, the HTTP front) run in one
event loop on AF_UNIX sockets named (host, port); device services and users live on the same
memory network. :func:`memory_network` refuses IP sockets for the test's duration, so a code
path that bypasses the backend fails instead of touching loopback. Tests that are about
sockets themselves (TCP options, nginx in front, TLS from a real client) stay on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from hagate.agent.agent import Agent
from hagate.agent.config import AgentConfig
from hagate.gateway.config import GatewayConfig
from hagate.gateway.server import Gateway
from hagate.net.backend import MemoryBackend

from .kit import (
    OPEN_POLICY,
    Handler,
    Pki,
    gateway_config,
    running_agent,
    running_gateway,
)

DEVICE_IP = "192.0.2.10"  # where agents connect from
USER_IP = "198.51.100.7"  # where users connect from


def _no_ip(name: str) -> Callable[..., Any]:
    real = getattr(socket.socket, name)

    def guarded(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise PermissionError(f"socket.{name}{args}: this test must not use the network")
        return real(self, *args)

    return guarded


def memory_network(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    """One memory network for the test; IP sockets are refused meanwhile (each test module
    makes this its ``mem`` fixture)."""
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _no_ip(name))
    return MemoryBackend()


def memory_gateway_config(pki: Pki, policy: str = OPEN_POLICY, **changes: object) -> GatewayConfig:
    """kit.gateway_config without the admin listener (its HTTP server is a real socket)."""
    return replace(gateway_config(pki, policy, admin=None), **changes)  # type: ignore[arg-type]


def memory_gateway(
    cfg: GatewayConfig, mem: MemoryBackend
) -> contextlib.AbstractAsyncContextManager[Gateway]:
    return running_gateway(cfg, backend=mem)


def memory_agent(
    cfg: AgentConfig, mem: MemoryBackend, wait: bool = True
) -> contextlib.AbstractAsyncContextManager[Agent]:
    """An agent whose connections come from the device's address."""
    return running_agent(cfg, wait, backend=mem.from_source(DEVICE_IP))


async def serve(mem: MemoryBackend, port: int, handle: Handler) -> asyncio.Server:
    """A device's local service on its 127.0.0.1:``port``."""
    return await asyncio.start_server(handle, sock=mem.listen("127.0.0.1", port))


async def user(
    mem: MemoryBackend, host: str, port: int, **kw: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A user's connection to the gateway (``kw`` as for asyncio.open_connection: ssl...)."""
    sock = await mem.from_source(USER_IP).connect(host, port, 2.0)
    return await asyncio.open_connection(sock=sock, **kw)


async def roundtrip(mem: MemoryBackend, host: str, port: int, payload: bytes) -> bytes:
    r, w = await user(mem, host, port)
    try:
        w.write(payload)
        return await asyncio.wait_for(r.readexactly(len(payload)), 5)
    finally:
        w.close()


async def http_get(mem: MemoryBackend, port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    """One HTTP/1.1 request with Connection: close to the gateway's http listener."""
    r, w = await user(mem, "127.0.0.1", port)
    try:
        w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), 5)
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), body
    finally:
        w.close()


class Relay:
    """Stands in for the VIP on the memory network: ``freeze()`` blackholes every connection
    made so far (no FIN, no RST), as a frozen node that keeps the address does."""

    def __init__(self, mem: MemoryBackend, target: int, port: int = 7443) -> None:
        self.mem = mem
        self.target = target
        self.port = port
        self.frozen = False
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Relay:
        self.server = await asyncio.start_server(
            self._handle, sock=self.mem.listen("127.0.0.1", self.port)
        )
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        sock = await self.mem.connect("127.0.0.1", self.target, 2.0)
        ur, uw = await asyncio.open_connection(sock=sock)
        self._writers += [w, uw]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                while data := await src.read(65536):
                    if self.frozen:
                        return  # swallowed: never answered
                    dst.write(data)
                    await dst.drain()
                if not self.frozen:
                    dst.close()

        await asyncio.gather(copy(r, uw), copy(ur, w))

    def freeze(self) -> None:
        self.frozen = True

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self._writers:
            w.close()
