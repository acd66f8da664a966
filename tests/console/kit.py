"""Test kit for the console: a real gateway (admin listener, agents) and fake VRRP daemons (the
daemon's own StatusServer serving snapshots the test edits) in an event loop of their own
thread, and the console's server in front of them, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import secrets
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hagate.agent.agent import Agent
from hagate.agent.config import AgentConfig, ClientConfig, LocalService, Reconnect
from hagate.console.auth import ConsoleAuth
from hagate.console.nodes import NodeClient, NodeTarget, admin_client_context
from hagate.console.poller import Cluster
from hagate.console.views import Views
from hagate.console.web import ConsoleApp, ConsoleServer
from hagate.daemon.status import StatusServer
from hagate.gateway.config import Endpoint, GatewayConfig
from hagate.gateway.protocol import ServiceKind, ServiceSpec
from hagate.gateway.server import Gateway
from hagate.pki.ca import Role, init_ca, issue
from hagate.policy.passwords import hash_password

T = TypeVar("T")
DOMAIN = "gw.test"
PASSWORDS = {"ops": "ops password", "viv": "viewer password", "mallory": "no group at all"}


@functools.cache
def _hashes() -> str:
    return "\n".join(f'{u} = "{hash_password(p)}"' for u, p in PASSWORDS.items())


def policy_text(pki: Path) -> str:
    """ops is an operator, viv a viewer, mallory neither; operators may use dev* web UIs."""
    hashes = _hashes()
    return (
        "[tokens]\n"
        f'ca = "{pki / "ca.crt"}"\n\n'
        "[groups]\n"
        'operator = ["password:ops", "user:alice"]\n'
        'viewer = ["password:viv"]\n\n'
        f"[passwords]\n{hashes}\n\n"
        "[[rule]]\n"
        'name = "ops-web"\n'
        'who = ["group:operator"]\n'
        'devices = ["dev*"]\n'
        'services = ["*"]\n'
        'routes = ["http", "https"]\n'
    )


def snapshot(state: str, prio: int, at: float, old: str, reason: str) -> dict[str, Any]:
    """A `hagate vrrp status --json` snapshot with one instance (what the daemon serves)."""
    return {
        "pid": 1,
        "config": "keepalived.conf",
        "instances": [
            {
                "name": "VI_1",
                "vrid": 51,
                "interface": "eth0",
                "version": 3,
                "family": 4,
                "state": state,
                "base_priority": prio,
                "effective_priority": prio,
                "master": None,
                "last_transition": {"at": at, "old": old, "new": state, "reason": reason},
                "counters": {"adverts_in": 1, "adverts_out": 1, "transitions": 1},
                "scripts": [{"name": "chk_gateway", "status": "ok", "weight": 0}],
                "vips": ["10.1.1.100/24"],
            }
        ],
    }


class LoopThread:
    """An asyncio loop in a thread: ``run(coro)`` from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Stack:
    tmp: Path
    loop: LoopThread
    gateway: Gateway
    snapshots: dict[str, dict[str, Any] | None]
    status: dict[str, StatusServer]
    server: ConsoleServer
    cluster: Cluster
    web_port: int
    token: str | None = None  # the gateway's admin token ([listen] admin_token_file)
    agents: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    agent_objs: dict[str, Agent] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self) -> tuple[str, int]:
        return self.gateway.addresses["admin"]

    def bearer(self, token: str | None = None) -> dict[str, str]:
        """The admin listener's Authorization header (the stack's token by default)."""
        return {"Authorization": f"Bearer {token or self.token}"}

    def start_agent(self, device: str) -> None:
        pki = self.tmp / "pki"
        b = pki / "issued" / "device" / device
        client = ClientConfig(
            "127.0.0.1", self.gateway.addresses["tunnel"][1], "localhost",
            b / "ca.crt", b / "cert.pem", b / "key.pem",
        )  # fmt: skip
        spec = ServiceSpec("web", ServiceKind.HTTP, None, self.web_port)
        rc = Reconnect(fast_retries=3, fast_delay=0.05, base_delay=0.2, max_delay=1.0)
        agent = Agent(AgentConfig(client, [LocalService(spec, "127.0.0.1", self.web_port)], rc))

        async def go() -> asyncio.Task[None]:
            task = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.connected.wait(), 5)
            return task

        self.agents[device] = self.loop.run(go())
        self.agent_objs[device] = agent

    def stop_agent(self, device: str) -> None:
        task = self.agents.pop(device)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.loop.run(stop())

    def kill_status(self, node: str) -> None:
        """The node's VRRP daemon dies: its socket stops answering."""
        self.loop.run(self.status[node].close())

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        port: int | None = None,
        host: str | None = None,
    ) -> tuple[int, http.client.HTTPMessage, Any]:
        """One request to the console (or ``port``); JSON answers decoded."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=5)
        hdrs = dict(headers or {})
        if host is not None:
            hdrs["Host"] = host
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, data, hdrs)
            res = conn.getresponse()
            raw = res.read()
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw
        return res.status, res.headers, decoded

    def login(self, user: str) -> tuple[str, str]:
        """(cookie header value, csrf token) of a fresh session."""
        status, headers, data = self.request(
            "POST",
            "/api/login",
            {"user": user, "password": PASSWORDS[user]},
            {"Origin": self.origin},
        )
        assert status == 200, data
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        return cookie, data["csrf"]


def wait_for(predicate: Any, timeout: float = 5.0, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def _web() -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@contextlib.contextmanager
def stack(
    tmp: Path,
    interval: float = 0.05,
    audit: bool = True,
    token: bool = True,
    admin_tls: bool = False,
) -> Iterator[Stack]:
    """Gateway "node-1" (with admin, and an admin token unless ``token`` is false; over TLS
    with ``admin_tls``, the console then checking it against the CA), fake VRRP daemons node-1
    MASTER and node-2 BACKUP, and the console; everything stopped at the end."""
    pki = tmp / "pki"
    init_ca(pki)
    issue(pki, Role.SERVER, "gateway", dns=["localhost", DOMAIN, f"*.{DOMAIN}"], ips=["127.0.0.1"])
    for d in ("dev1", "dev2"):
        issue(pki, Role.DEVICE, d)
    issue(pki, Role.USER, "alice")
    (tmp / "policy.toml").write_text(policy_text(pki))
    srv = pki / "issued" / "server" / "gateway"
    admin_token = secrets.token_urlsafe(32) if token else None
    token_file = tmp / "admin.token" if token else None
    if token_file is not None:
        token_file.touch(mode=0o600)
        token_file.write_text(f"{admin_token}\n")
    loopback = Endpoint("127.0.0.1", 0)
    cfg = GatewayConfig(
        domain=DOMAIN, ca=pki / "ca.crt", cert=srv / "cert.pem", key=srv / "key.pem",
        crl=None, tunnel=loopback, http=loopback, https=None, admin=loopback,
        https_cert=srv / "cert.pem", https_key=srv / "key.pem", tcp_host="127.0.0.1",
        policy=tmp / "policy.toml", node="node-1", heartbeat_ms=100,
        access_log=tmp / "access.log", admin_token_file=token_file, admin_tls=admin_tls,
    )  # fmt: skip
    loop = LoopThread()
    now = time.time()
    snaps: dict[str, dict[str, Any] | None] = {
        "node-1": snapshot("MASTER", 255, now - 60, "BACKUP", "priority 255: address owner"),
        "node-2": snapshot("BACKUP", 200, now - 59, "INITIALIZE", "startup"),
    }
    status: dict[str, StatusServer] = {}
    gw = Gateway(cfg)
    server: ConsoleServer | None = None
    cluster: Cluster | None = None
    web: asyncio.Server | None = None
    built: Stack | None = None
    try:

        async def start() -> tuple[asyncio.Server, int]:
            await gw.start()
            for name in snaps:
                run = tmp / name
                run.mkdir()
                status[name] = StatusServer(run / "vrrp.sock", lambda n=name: snaps[n] or {})
                await status[name].start()
            return await _web()

        web, web_port = loop.run(start())
        admin = gw.addresses["admin"]
        targets = [
            NodeTarget("node-1", admin, tmp / "node-1"),
            NodeTarget("node-2", None, tmp / "node-2"),
        ]
        tls = admin_client_context(pki / "ca.crt") if admin_tls else None
        clients = [NodeClient(t, token=admin_token, tls=tls) for t in targets]
        cluster = Cluster(clients, interval=interval)
        views = Views(cluster, tmp / "policy.toml", pki)
        app = ConsoleApp(
            cluster, views, ConsoleAuth(), audit_file=tmp / "audit.log" if audit else None
        )
        server = ConsoleServer(("127.0.0.1", 0), app)
        cluster.start()
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        built = Stack(tmp, loop, gw, snaps, status, server, cluster, web_port, admin_token)
        yield built
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if cluster is not None:
            cluster.stop()
        if built is not None:
            for device in list(built.agents):
                built.stop_agent(device)

        async def stop() -> None:
            for s in status.values():
                await s.close()
            await gw.stop()
            if web is not None:
                web.close()

        with contextlib.suppress(Exception):
            loop.run(stop())
        loop.close()
