"""A real Gateway and Agent on a MemoryBackend: the TCP data path with no network at all.

Gateway and Agent take no backend yet, so the test swaps the module-level functions they
call (``listen_socket``, ``open_tcp``, ``open_tcp_staggered``) for the backend's methods.
The gateway listens on the VIP's address (10.1.1.100) without root, namespaces or ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hagate.agent.agent import Agent
from hagate.agent.config import AgentConfig, ClientConfig, LocalService, Reconnect
from hagate.gateway.config import Endpoint, GatewayConfig
from hagate.gateway.server import Gateway
from hagate.net.backend import Fault, MemoryBackend
from hagate.net.conn import Conn
from hagate.tunnel.wire import ServiceKind, ServiceSpec

from .conftest import Pki, pattern, run

VIP = "10.1.1.100"
TUNNEL_PORT = 443  # fixed ports: a memory network has nothing else on it
SSH_PORT = 22002  # the inventory port users reach dev1/ssh on

POLICY = """
[[rule]]
name = "ssh-public"
devices = ["dev1"]
services = ["ssh"]
routes = ["tcp"]
public = true
"""


def no_ip(name: str) -> Callable[..., Any]:
    """``socket.socket.<name>`` that refuses IP sockets: should a refactor stop the swap
    below from taking effect, the test fails instead of sending a SYN to 10.1.1.100."""
    real = getattr(socket.socket, name)

    def guarded(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise PermissionError(f"socket.{name}{args}: this test must not use the network")
        return real(self, *args)

    return guarded


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    """One in-memory network; the gateway and the agent make every socket on it."""
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, no_ip(name))
    return MemoryBackend()


def gateway_config(pki: Pki, tmp_path: Path) -> GatewayConfig:
    srv = pki.bundle("server", "gateway")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return GatewayConfig(
        domain="gw.test",
        ca=pki.ca,
        cert=srv / "cert.pem",
        key=srv / "key.pem",
        crl=pki.dir / "crl.pem",
        tunnel=Endpoint(VIP, TUNNEL_PORT),
        http=None,
        https=None,
        admin=None,
        https_cert=srv / "cert.pem",
        https_key=srv / "key.pem",
        tcp_host=VIP,
        tcp_pinned={"dev1/ssh": SSH_PORT},
        policy=policy,
        node="memory",
        heartbeat_ms=100,
    )


def agent_config(pki: Pki, tunnel_port: int = TUNNEL_PORT) -> AgentConfig:
    dev = pki.bundle("device", "dev1")
    client = ClientConfig(
        VIP, tunnel_port, "localhost", dev / "ca.crt", dev / "cert.pem", dev / "key.pem"
    )
    ssh = LocalService(ServiceSpec("ssh", ServiceKind.TCP, SSH_PORT, 22), "127.0.0.1", 22)
    return AgentConfig(client, [ssh], Reconnect(fast_retries=3, fast_delay=0.02))


async def echo_service(mem: MemoryBackend) -> asyncio.Server:
    """The device's own service, on the device's 127.0.0.1:22 (also in memory)."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    return await asyncio.start_server(handle, sock=mem.listen("127.0.0.1", 22))


@contextlib.asynccontextmanager
async def running(gw: Gateway, agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    await gw.start()
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gw.stop()


def test_gateway_tcp_data_path_in_memory(pki: Pki, tmp_path: Path, mem: MemoryBackend) -> None:
    async def main() -> None:
        service = await echo_service(mem)
        gw = Gateway(gateway_config(pki, tmp_path), backend=mem)
        # The agent's connections come from the device's address.
        agent = Agent(agent_config(pki), backend=mem.from_source("192.0.2.10"))
        async with running(gw, agent):
            await asyncio.wait_for(agent.connected.wait(), 3.0)
            assert gw.addresses["tunnel"] == (VIP, TUNNEL_PORT)
            assert agent.routes == {"ssh": f"tcp:{SSH_PORT}"}
            listeners = [*gw._listeners, *gw.tcp.socks.values()]
            assert len(listeners) == 2 and {s.family for s in listeners} == {socket.AF_UNIX}
            user = mem.from_source("198.51.100.7")
            conn = Conn(await user.connect(VIP, SSH_PORT, 1.0))
            payload = pattern(1_000_000, 7)
            conn.write(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = await asyncio.wait_for(conn.recv_some(), 2.0)
                assert chunk, "stream ended early"
                got += chunk
            assert got == payload
            conn.close()
            assert gw.bytes_forwarded()[0] >= len(payload)
            text = gw.render_metrics()
            assert "hagate_agents_connected 1" in text
            assert "hagate_streams_total 1" in text
        service.close()

    run(main(), timeout=8.0)


def test_agent_rides_out_a_reset_then_a_silent_vip(
    pki: Pki, tmp_path: Path, mem: MemoryBackend
) -> None:
    """Faults on the tunnel address: resets are retried, a silent VIP connects once healed."""

    async def main() -> None:
        service = await echo_service(mem)
        gw = Gateway(gateway_config(pki, tmp_path), backend=mem)
        # The agent's connections come from the device's address.
        agent = Agent(agent_config(pki), backend=mem.from_source("192.0.2.10"))
        tunnel_port = TUNNEL_PORT
        mem.fault(VIP, tunnel_port, Fault.RESET)
        async with running(gw, agent):
            while mem.attempts[(VIP, tunnel_port)] < 3:
                await asyncio.sleep(0.01)
            assert not agent.connected.is_set()
            assert agent.last_error.startswith(("ConnectionResetError", "BrokenPipeError"))
            mem.fault(VIP, tunnel_port, Fault.SILENT)  # the VIP is moving: nobody answers
            # The redial schedule is randomised: wait for the attempt that meets the silence,
            # then that one attempt waits, no spinning.
            before = mem.attempts[(VIP, tunnel_port)]
            while mem.attempts[(VIP, tunnel_port)] == before:
                await asyncio.sleep(0.01)
            waiting = mem.attempts[(VIP, tunnel_port)]
            await asyncio.sleep(0.3)
            assert not agent.connected.is_set()
            assert mem.attempts[(VIP, tunnel_port)] == waiting
            mem.heal(VIP, tunnel_port)  # the new holder's gratuitous ARP
            # After resets the busy rule's jitter window may hold the next attempt a few s.
            await asyncio.wait_for(agent.connected.wait(), 8.0)
        service.close()

    run(main(), timeout=15.0)
