"""The tunnel port: agents' control and data connections, and users' `hagate connect` streams.

The driver around the tunnel protocol: it reads the first message of each authenticated TLS
connection and hands it to the session registry (agents) or to the access policy and a stream
(``connect``). Heartbeats to every agent go out from here.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import TYPE_CHECKING, Any

from hagate.gateway.protocol import (
    MAX_LINE,
    PING,
    VERSION,
    ServiceKind,
    ServiceSpec,
    encode,
    read_message,
)
from hagate.gateway.session import Session, StreamError
from hagate.net.conn import Conn, ProtocolError, set_keepalive, set_nodelay
from hagate.net.tls import Identity, peer_identity
from hagate.pki.ca import Role
from hagate.policy import AuthFailure, RouteKind

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.gateway")

MAX_SPARES = 16  # spare data connections of one session (agents grow to this when busy)
MAX_PING_BACKLOG = 64 * 1024


class Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TunnelFront:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def on_connection(self, sock: Any, client: tuple[str, int]) -> None:
        gw = self.gw
        accepted = await gw.tls_accept(sock, client, gw.tunnel_ctx)
        if accepted is None:
            return
        conn, ssock = accepted
        ident = peer_identity(ssock)
        try:
            if ident is None:
                raise Refused("bad_certificate", "certificate has no hagate role")
            if ident.serial in gw.revoked:
                raise Refused("revoked", "certificate revoked")
            msg = await asyncio.wait_for(read_message(conn), gw.cfg.handshake_timeout)
            op = msg.get("op")
            if op == "hello" and ident.role is Role.DEVICE:
                await self._control(conn, ident, msg)
            elif op == "data" and ident.role is Role.DEVICE:
                self._data(conn, ident, msg)
            elif op == "connect" and ident.role in (Role.USER, Role.DEVICE):
                await self._connect(conn, ident, msg, client)
            else:
                raise Refused("wrong_role", f"a {ident.role.value} certificate cannot {op!r}")
        except Refused as exc:
            gw.metrics.auth_failures[exc.reason] += 1
            log.info("refused %s: %s", ident.name if ident else "?", exc.message)
            conn.write(encode(op="error", error=exc.message))
            conn.close()
        except (ProtocolError, EOFError, TimeoutError, OSError) as exc:
            log.debug("tunnel connection dropped: %s", exc)
            conn.close()

    # ------------------------------------------------------------ agents

    async def _control(self, conn: Conn, ident: Identity, msg: dict[str, Any]) -> None:
        gw = self.gw
        raw = msg.get("services")
        if not isinstance(raw, list) or len(raw) > 64:
            raise ProtocolError("hello needs a list of at most 64 services")
        services = [ServiceSpec.from_json(s) for s in raw]
        if len({s.name for s in services}) != len(services):
            raise ProtocolError("service names must be unique")
        session = Session(ident, conn, services, max_pool=MAX_SPARES)
        routes, errors = gw.attach(session)
        reconnects = msg.get("reconnects")
        if isinstance(reconnects, int) and reconnects > 0:
            gw.metrics.reconnects_total += 1
        set_keepalive(conn.sock)
        cfg = gw.cfg
        conn.write(
            encode(
                op="welcome",
                v=VERSION,
                session=session.sid,
                heartbeat_ms=cfg.heartbeat_ms,
                dead_after_ms=cfg.dead_after_ms,
                pool=cfg.pool,
                pool_idle_s=cfg.pool_idle,
                routes=routes,
                errors=errors,
            )
        )
        try:
            while not session.closed:
                line = await conn.read_until(b"\n", MAX_LINE)
                if b'"probe"' in line:
                    conn.write(PING)  # an agent that heard nothing for a while asks
                elif b'"bye"' in line:
                    break
        except (EOFError, ProtocolError, OSError):
            pass
        finally:
            gw.end_session(session)

    def _data(self, conn: Conn, ident: Identity, msg: dict[str, Any]) -> None:
        sid, token = msg.get("session"), msg.get("token") or ""
        session = self.gw.sessions.get(ident.name)
        if session is None or session.sid != sid or not isinstance(token, str):
            conn.write(encode(op="error", error="not the current session of this device"))
            conn.close()
            return
        set_nodelay(conn.sock)
        if not session.add_data(token, conn):
            conn.close()

    async def heartbeat(self) -> None:
        """One ping per interval to every agent; an agent that hears none for ~1 s probes."""
        gw = self.gw
        interval = gw.cfg.heartbeat_ms / 1000
        loop = asyncio.get_running_loop()
        next_expiry = 0.0
        frozen_at = 0
        while True:
            await asyncio.sleep(interval)
            gw.tick = time.monotonic()
            now = loop.time()
            if len(gw.sessions) > frozen_at * 1.1 + 100:
                # Sessions live long and form no garbage cycles: take them out of the cyclic
                # collector's view, or each full collection walks every session (0.3 s at
                # 8,000 agents, enough for agents to see a silent gateway).
                gc.freeze()
                frozen_at = len(gw.sessions)
            if gw.cfg.pool_idle >= 0 and now >= next_expiry:
                next_expiry = now + 1.0
                for session in list(gw.sessions.values()):
                    if session.pool:
                        session.expire_pool(now - gw.cfg.pool_idle)
            sessions = list(gw.sessions.values())
            for i, session in enumerate(sessions):
                if i and i % 2000 == 0:
                    await asyncio.sleep(0)  # let other work in between: no long stalls
                if len(session.conn.wbuf) > MAX_PING_BACKLOG:
                    gw.end_session(session)
                elif not session.closed:
                    session.conn.write(PING)
                if session.conn.closed:
                    gw.end_session(session)

    # ------------------------------------------------------------ connect

    async def _connect(
        self, conn: Conn, ident: Identity, msg: dict[str, Any], client: tuple[str, int]
    ) -> None:
        gw = self.gw
        device, service = msg.get("device"), msg.get("service")
        if not isinstance(device, str) or not isinstance(service, str):
            raise ProtocolError("connect needs device and service")
        principal = gw.policy.authenticate(None, ident, time.time())  # certificates: no I/O
        if isinstance(principal, AuthFailure):
            raise Refused("wrong_role", principal.reason)
        try:
            lease = gw.authorize_stream(
                principal, device, service, RouteKind.CONNECT, client[0], ServiceKind.TCP
            )
            try:
                data = await gw.open_upstream(device, service, None)
            except BaseException:
                lease.end("error")
                raise
        except StreamError as exc:
            gw.metrics.stream_failures[exc.reason] += 1
            conn.write(encode(ok=False, error=exc.message))
            await asyncio.wait_for(conn.drain(), 2.0)
            conn.close()
            return
        conn.write(encode(ok=True))
        await conn.drain()
        gw.pipe(lease, conn, data)
