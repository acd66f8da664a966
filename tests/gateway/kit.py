"""Test kit: a PKI, a gateway and agents in one event loop, tiny device services."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from hagate.agent.agent import Agent
from hagate.agent.config import AgentConfig, ClientConfig, LocalService, Reconnect
from hagate.gateway.config import Endpoint, GatewayConfig
from hagate.gateway.protocol import ServiceKind, ServiceSpec
from hagate.gateway.server import Gateway
from hagate.net.backend import KERNEL, Backend
from hagate.pki.ca import Role, init_ca, issue

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

DOMAIN = "gw.test"

# What the tests that are not about access control run with: every web route and every
# inventory TCP port open, `connect` for any user certificate (not for devices).
OPEN_POLICY = """
[[rule]]
name = "open-web"
devices = ["*"]
services = ["*"]
routes = ["http", "https", "tcp"]
public = true

[[rule]]
name = "users-connect"
who = ["user:*"]
devices = ["*"]
services = ["*"]
routes = ["connect"]
"""


@dataclass(frozen=True)
class Pki:
    dir: Path

    def bundle(self, role: str, name: str) -> Path:
        return self.dir / "issued" / role / name


def make_pki(root: Path, devices: tuple[str, ...] = ("dev1", "dev2", "dev3")) -> Pki:
    init_ca(root)
    issue(root, Role.SERVER, "gateway", dns=["localhost", DOMAIN, f"*.{DOMAIN}"], ips=["127.0.0.1"])
    for d in devices:
        issue(root, Role.DEVICE, d)
    issue(root, Role.USER, "alice")
    issue(root, Role.USER, "bob")
    return Pki(root)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_policy(pki: Pki, text: str, name: str = "policy.toml") -> Path:
    path = pki.dir / name
    path.write_text(text)
    return path


def gateway_config(pki: Pki, policy: str = OPEN_POLICY, **changes: object) -> GatewayConfig:
    """A loopback gateway; ``policy`` is the policy file's text, written beside the PKI."""
    srv = pki.bundle("server", "gateway")
    cfg = GatewayConfig(
        domain=DOMAIN,
        ca=pki.dir / "ca.crt",
        cert=srv / "cert.pem",
        key=srv / "key.pem",
        crl=pki.dir / "crl.pem",
        tunnel=Endpoint("127.0.0.1", 0),
        http=Endpoint("127.0.0.1", 0),
        https=Endpoint("127.0.0.1", 0),
        admin=Endpoint("127.0.0.1", 0),
        https_cert=srv / "cert.pem",
        https_key=srv / "key.pem",
        tcp_host="127.0.0.1",
        policy=write_policy(pki, policy),
        node="test",
        heartbeat_ms=100,
    )
    return replace(cfg, **changes)  # type: ignore[arg-type]


def client_config(pki: Pki, role: str, name: str, port: int) -> ClientConfig:
    b = pki.bundle(role, name)
    return ClientConfig("127.0.0.1", port, "localhost", b / "ca.crt", b / "cert.pem", b / "key.pem")


def agent_config(
    pki: Pki,
    device: str,
    port: int,
    http: int | None = None,
    tcp: int | None = None,
    tcp_port: int | None = None,
) -> AgentConfig:
    services = []
    if http is not None:
        services.append(
            LocalService(ServiceSpec("http", ServiceKind.HTTP, None, http), "127.0.0.1", http)
        )
    if tcp is not None:
        services.append(
            LocalService(ServiceSpec("ssh", ServiceKind.TCP, tcp_port, tcp), "127.0.0.1", tcp)
        )
    rc = Reconnect(fast_retries=3, fast_delay=0.05, base_delay=0.2, max_delay=1.0)
    return AgentConfig(client_config(pki, "device", device, port), services, rc)


@contextlib.asynccontextmanager
async def running_gateway(cfg: GatewayConfig, backend: Backend = KERNEL) -> AsyncIterator[Gateway]:
    gw = Gateway(cfg, backend=backend)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


@contextlib.asynccontextmanager
async def running_agent(
    cfg: AgentConfig, wait: bool = True, backend: Backend = KERNEL
) -> AsyncIterator[Agent]:
    agent = Agent(cfg, backend=backend)
    task = asyncio.create_task(agent.run())
    try:
        if wait:
            await asyncio.wait_for(agent.connected.wait(), 5)
        yield agent
    finally:
        task.cancel()
        # Bounded: an agent that does not stop on cancel is a bug to name, not a 120 s hang.
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done, "the agent did not stop within 10 s of task.cancel()"
        with contextlib.suppress(asyncio.CancelledError):
            await task


def hello(name: str) -> Handler:
    """Answers every request with 'hello from NAME <path>' (keep-alive)."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                body = f"hello from {name} {path}".encode()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await w.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    return handle


async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Sends back what it reads until EOF."""
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()


async def http_service(name: str) -> tuple[asyncio.Server, int]:
    """:func:`hello` on a free loopback port."""
    server = await asyncio.start_server(hello(name), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo_service() -> tuple[asyncio.Server, int]:
    """:func:`echo` on a free loopback port."""
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def http_get(port: int, host: str, path: str = "/", timeout: float = 5) -> tuple[int, bytes]:
    """One HTTP/1.1 request with Connection: close; (status, body)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ")[1])
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        body = await asyncio.wait_for(
            r.readexactly(length) if length is not None else r.read(), timeout
        )
        return status, body
    finally:
        w.close()


async def echo_roundtrip(port: int, payload: bytes, timeout: float = 5) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        return await asyncio.wait_for(r.readexactly(len(payload)), timeout)
    finally:
        w.close()


class Relay:
    """A TCP relay standing in for the VIP: ``target`` can be switched, ``freeze`` blackholes
    the established connections (no FIN, no RST: a dead node or a moved address)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.moved = False
        self.frozen: list[asyncio.StreamWriter] = []
        self._live: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Relay:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        pair = (w, uw)
        self._live.append(pair)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if pair not in self._live:
                        if self.moved and src is r:  # the new VIP holder resets the stranger
                            sock = w.get_extra_info("socket")
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )
                            w.transport.abort()
                        return  # frozen: swallow, never answer
                    dst.write(data)
                    await dst.drain()
                if pair in self._live:
                    dst.close()
            except (ConnectionError, RuntimeError):
                pass

        await asyncio.gather(copy(r, uw), copy(ur, w))

    def move(self, target: int) -> None:
        """The VIP moves: new connections reach ``target``, old ones get a reset."""
        self.moved = True
        self.freeze()
        self.target = target

    def freeze(self) -> None:
        for pair in self._live:
            self.frozen.extend(pair)
        self._live.clear()

    def close(self) -> None:
        if self.server:
            self.server.close()
        for w in self.frozen:
            w.close()
