"""The tunnel port: agents' control and data connections, and users' `hagate connect` streams.

A thin asyncio driver around the sans-IO core in :mod:`hagate.tunnel`: every line is decoded
by :class:`~hagate.tunnel.connection.TunnelConnection` into a typed event (no substring
dispatch on raw JSON), peer garbage is a ``ProtocolViolation`` answered with one ``error``
line, and who owns a device (supersede, twin back-off) is decided by the pure
:class:`~hagate.tunnel.registry.SessionRegistry`. Heartbeats to every agent go out from here.

Warm standby (``[tunnel] standby_endpoints``, docs/fleet.md): an agent attached elsewhere
also holds an authenticated, idle connection to this node's own address. It is parked
(:class:`~hagate.tunnel.registry.StandbyTable`: not a session, not routable, no pings, TCP
keepalive only) until this node holds the address the agent's session dialled (the VIP);
then it is promoted: attached as the device's session and sent its welcome, without any TCP
or TLS handshake in the failover.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hagate.gateway.bans import DeviceBans
from hagate.gateway.session import Session, StreamError, address_is_local
from hagate.net.conn import Conn, ProtocolError, set_keepalive, set_nodelay
from hagate.net.tls import Identity, PeerCert, peer_identity, session_expired
from hagate.pki.ca import Role
from hagate.policy import AuthFailure, RouteKind
from hagate.tunnel import wire
from hagate.tunnel.connection import (
    Closed,
    Event,
    ProtocolViolation,
    Sentinel,
    State,
    TunnelConnection,
)
from hagate.tunnel.connection import Role as Side
from hagate.tunnel.registry import (
    Parked,
    Promote,
    RefuseStandby,
    RefuseTwin,
    SessionRegistry,
    StandbyTable,
    Supersede,
)

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.gateway")

MAX_SPARES = 16  # spare data connections of one session (agents grow to this when busy)
MAX_PING_BACKLOG = 64 * 1024
PROMOTE_CHECK_S = 0.05  # how often a node with standbys checks the addresses they dialled
PROMOTE_BATCH = 200  # welcomes written per loop turn when promoting (pings keep flowing)
OWN_ENDPOINTS_TTL_S = 10.0  # which standby endpoints are this node's: re-checked this often


class Refused(Exception):
    """Refuse the connection with one ``error`` line; ``reason`` is the metrics label/code."""

    def __init__(self, reason: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after_ms = retry_after_ms


def _expired(cert: PeerCert | None, now: float) -> bool:
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        return False  # no certificate time to go by (tests' memory sockets)
    try:
        return now >= ssl.cert_time_to_seconds(not_after)
    except ValueError:
        return True


class _Standby:
    """A parked standby connection; ``session`` is set once it is promoted."""

    __slots__ = ("cert", "conn", "ident", "msg", "session", "sid", "tc")

    def __init__(
        self,
        sid: str,
        ident: Identity,
        cert: PeerCert | None,
        conn: Conn,
        tc: TunnelConnection,
        msg: wire.Standby,
    ) -> None:
        self.sid = sid
        self.ident = ident
        self.cert = cert
        self.conn = conn
        self.tc = tc
        self.msg = msg
        self.session: Session | None = None


async def read_event(conn: Conn, tc: TunnelConnection) -> Event | None:
    """The next event of ``tc``, reading ``conn`` as needed; None once raw bytes follow."""
    while True:
        event = tc.next_event()
        if event is Sentinel.PAUSED:
            return None
        if not isinstance(event, Sentinel):
            return event
        tc.receive_data(await conn.recv_some(), conn.loop.time())


class TunnelFront:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.registry = SessionRegistry()
        # [full, resumed] TLS handshakes on the tunnel port (in the metrics too)
        self.handshakes = gw.metrics.tunnel_handshakes
        self.stale_dropped = 0  # sessions ended because their VIP left this node
        self.bans = DeviceBans()  # kicked with a ban by an operator (admin API, bans.py)
        self.standbys = StandbyTable()
        self._standby: dict[str, _Standby] = {}
        self._checking = False  # the promotion check runs (only while standbys are parked)
        # Whether this host holds a dialled address now (tests replace it to move a "VIP").
        self.holds_address: Callable[[str], bool] = address_is_local
        # Dialled address -> whether this host held it at the last check. A standby is
        # promoted when its address *appears* (not held, then held), never because it is
        # merely there: a node whose VRRP daemon was killed keeps the VIP on its interface
        # without being the master, and must not take every device from the real one.
        self._held: dict[str, bool] = {}
        self._own_checked = -1e18
        self._others: tuple[str, ...] = ()

    async def on_connection(self, sock: Any, client: tuple[str, int]) -> None:
        gw = self.gw
        accepted = await gw.tls_accept(sock, client, gw.tunnel_ctx)
        if accepted is None:
            return
        conn, ssock = accepted
        self.handshakes[1 if ssock.session_reused else 0] += 1
        cert = ssock.getpeercert()  # decoded once for both checks below
        ident = peer_identity(ssock, cert)
        tc = TunnelConnection(Side.GATEWAY)
        try:
            if ident is None:
                raise Refused("bad_certificate", "certificate has no hagate role")
            if ident.serial in gw.revoked:
                raise Refused("revoked", "certificate revoked")
            if session_expired(ssock, time.time(), cert):  # resumed: its ticket outlived the cert
                raise Refused("expired", "certificate expired")
            event = await asyncio.wait_for(read_event(conn, tc), gw.cfg.handshake_timeout)
            if isinstance(event, ProtocolViolation):
                code = "version" if event.status_hint == wire.BAD_VERSION else "protocol"
                raise Refused(code, event.reason)
            if isinstance(event, wire.Hello) and ident.role is Role.DEVICE:
                await self._control(conn, tc, ident, event)
            elif isinstance(event, wire.Standby) and ident.role is Role.DEVICE:
                await self._standby_conn(conn, tc, ident, cert, event)
            elif isinstance(event, wire.Data) and ident.role is Role.DEVICE:
                self._data(conn, tc, ident, event)
            elif isinstance(event, wire.Connect) and ident.role in (Role.USER, Role.DEVICE):
                conn.rbuf += tc.trailing_data  # user bytes after the line go to the pipe
                await self._connect(conn, tc, ident, event, client)
            elif isinstance(event, (wire.Hello, wire.Standby, wire.Data, wire.Connect)):
                what = type(event).__name__.lower()
                raise Refused("wrong_role", f"a {ident.role.value} certificate cannot {what}")
            else:
                conn.close()  # closed before its first line
        except Refused as exc:
            gw.metrics.auth_failures[exc.reason] += 1
            log.info("refused %s: %s", ident.name if ident else "?", exc.message)
            refusal = wire.Refused(exc.message, exc.reason, exc.retry_after_ms)
            if tc.state is not State.RAW:
                conn.write(tc.send(refusal, conn.loop.time()))
            conn.close()
        except (ProtocolError, EOFError, TimeoutError, OSError) as exc:
            log.debug("tunnel connection dropped: %s", exc)
            conn.close()

    # ------------------------------------------------------------ agents

    async def _control(
        self, conn: Conn, tc: TunnelConnection, ident: Identity, hello: wire.Hello
    ) -> None:
        loop = conn.loop
        session = self._establish(
            conn, tc, ident, hello.services, hello.instance, hello.reconnects, hello.standby
        )
        try:
            await self._control_loop(conn, tc, session)
        except (EOFError, ProtocolError, OSError):
            pass
        finally:
            self.gw.end_session(session)
            self.registry.detach(session.sid, loop.time())

    def _establish(
        self,
        conn: Conn,
        tc: TunnelConnection,
        ident: Identity,
        services: tuple[wire.ServiceSpec, ...],
        instance: str,
        reconnects: int,
        standby: bool,
    ) -> Session:
        """Attach a session of ``ident`` (a hello, or a standby's promotion) and send its
        welcome; :class:`Refused` (banned, twin) leaves everything as it was."""
        gw = self.gw
        loop = conn.loop
        banned_ms = self.bans.refusal_ms(ident.name, loop.time())
        if banned_ms:
            raise Refused("banned", "device banned by an operator", banned_ms)
        session = Session(ident, conn, list(services), max_pool=MAX_SPARES)
        session.tc = tc
        device = ident.name
        self._reconcile(device)
        now = loop.time()
        for action in self.registry.attach(device, ident.serial, session.sid, now, instance):
            if isinstance(action, RefuseTwin):
                log.warning(
                    "device %s: another agent with this certificate came back early;"
                    " told to wait %.1f s (is this device's agent running twice?)",
                    device,
                    action.retry_after_ms / 1000,
                )
                raise Refused(
                    "twin",
                    "another agent with this device's certificate holds the session",
                    action.retry_after_ms,
                )
            if isinstance(action, Supersede):
                self._supersede(action)
        routes, errors = gw.attach(session)
        if reconnects > 0:
            gw.metrics.reconnects_total += 1
        if not tc.standby:  # a promoted standby has had its keepalive since it parked
            set_keepalive(conn.sock)
        cfg = gw.cfg
        others = self.other_endpoints() if standby and tc.version >= wire.STANDBY_VERSION else ()
        welcome = wire.Welcome(
            session=session.sid,
            heartbeat_ms=cfg.heartbeat_ms,
            dead_after_ms=cfg.dead_after_ms,
            pool=cfg.pool,
            pool_idle_s=cfg.pool_idle,
            routes=routes,
            errors=errors,
            version=tc.version,
            standby=others,
        )
        conn.write(tc.send(welcome, loop.time()))
        return session

    async def _control_loop(
        self,
        conn: Conn,
        tc: TunnelConnection,
        session: Session,
        first: Event | None = None,
        has_first: bool = False,
    ) -> None:
        while not session.closed:
            if has_first:
                event, has_first = first, False  # read while it was a parked standby
            else:
                event = await read_event(conn, tc)
            if isinstance(event, wire.Probe):
                conn.write(tc.send(wire.Ping(), conn.loop.time()))  # an agent that heard none
            elif isinstance(event, ProtocolViolation):
                log.info("device %s: %s", session.device, event.reason)
                conn.write(tc.send(wire.Refused(event.reason, "protocol"), conn.loop.time()))
                return
            elif event is None or isinstance(event, (wire.Bye, Closed)):
                return

    # ------------------------------------------------------------ standbys

    def other_endpoints(self) -> tuple[str, ...]:
        """``[tunnel] standby_endpoints`` without this node's own (its address and port)."""
        endpoints = self.gw.cfg.standby_endpoints
        if not endpoints:
            return ()
        now = time.monotonic()
        if now - self._own_checked >= OWN_ENDPOINTS_TTL_S:
            port = self.gw.addresses.get("tunnel", ("", 0))[1]
            self._others = tuple(
                str(e) for e in endpoints if not (e.port == port and address_is_local(e.host))
            )
            self._own_checked = now
        return self._others

    async def _standby_conn(
        self,
        conn: Conn,
        tc: TunnelConnection,
        ident: Identity,
        cert: PeerCert | None,
        msg: wire.Standby,
    ) -> None:
        """Park a standby connection until its promotion (then serve it as a session)."""
        gw = self.gw
        loop = conn.loop
        if not gw.cfg.standby_endpoints:
            raise Refused("forbidden", "this gateway holds no standby connections")
        banned_ms = self.bans.refusal_ms(ident.name, loop.time())
        if banned_ms:
            raise Refused("banned", "device banned by an operator", banned_ms)
        try:
            address = str(ipaddress.ip_address(msg.address))
        except ValueError:
            raise Refused("protocol", "standby: address must be an IP address") from None
        sid = secrets.token_hex(8)
        for action in self.standbys.park(ident.name, sid, address):
            if isinstance(action, RefuseStandby):
                raise Refused("limit", f"standby refused: {action.reason}")
            if not isinstance(action, Parked) or action.replaced is None:
                continue
            replaced = self._standby.pop(action.replaced, None)
            if replaced is not None:  # the newest standby of a device wins, as sessions do
                replaced.conn.write(replaced.tc.send(wire.Superseded(), loop.time()))
                replaced.conn.close()
        if address not in self._held:  # its state when the first standby came (one bind)
            self._held[address] = self.holds_address(address)
        # Only notAfter is needed at the promotion (the whole decoded certificate is ~2 KB
        # per standby): a resumed handshake's certificate may expire while it is parked.
        expiry = {"notAfter": cert.get("notAfter")} if cert else None
        entry = _Standby(sid, ident, expiry, conn, tc, msg)
        self._standby[sid] = entry
        gw.metrics.tunnel_standby = len(self.standbys)
        set_keepalive(conn.sock)  # its only liveness check: no pings on a parked connection
        conn.write(tc.send(wire.StandingBy(tc.version), loop.time()))
        if not self._checking:
            self._checking = True
            gw._spawn(self._promotions())
        try:
            event = await read_event(conn, tc)
            if entry.session is not None:  # promoted meanwhile: a session from here on
                await self._control_loop(conn, tc, entry.session, event, has_first=True)
            elif isinstance(event, ProtocolViolation):
                log.info("device %s standby: %s", ident.name, event.reason)
                conn.write(tc.send(wire.Refused(event.reason, "protocol"), loop.time()))
        except (EOFError, ProtocolError, OSError):
            pass
        finally:
            if self._standby.get(sid) is entry:
                del self._standby[sid]
                self.standbys.drop(sid)
                gw.metrics.tunnel_standby = len(self.standbys)
            if entry.session is not None:
                gw.end_session(entry.session)
                self.registry.detach(entry.session.sid, loop.time())
            conn.close()

    async def _promotions(self) -> None:
        """While standbys are parked: every PROMOTE_CHECK_S, one bind per distinct dialled
        address; the standbys of an address this node has just gained are promoted in
        batches."""
        gw = self.gw
        revoked = gw.revoked
        frozen_at = 0
        try:
            while len(self.standbys):
                await asyncio.sleep(PROMOTE_CHECK_S)
                if len(self.standbys) > frozen_at * 1.1 + 100:
                    # As the heartbeat does for sessions: a backup holding 10,000 standbys
                    # (and no session) would otherwise walk them all in each full
                    # collection, maybe right when it has to promote them.
                    gc.freeze()
                    frozen_at = len(self.standbys)
                if gw.revoked is not revoked:
                    revoked = gw.revoked
                    self._drop_revoked()
                addresses = self.standbys.addresses()
                for gone in set(self._held) - set(addresses):
                    del self._held[gone]
                for address in addresses:
                    held = self.holds_address(address)
                    was = self._held.get(address, held)
                    self._held[address] = held
                    if not held or was:
                        continue
                    t0 = time.monotonic()
                    n = 0
                    while batch := self.standbys.promote(address, PROMOTE_BATCH):
                        for action in batch:
                            if isinstance(action, Promote):
                                n += self._promote(action)
                        gw.metrics.tunnel_standby = len(self.standbys)
                        await asyncio.sleep(0)  # pings, streams and accepts in between
                    log.info(
                        "promoted %d standby connections to sessions: this node holds %s (%.0f ms)",
                        n,
                        address,
                        (time.monotonic() - t0) * 1000,
                    )
        finally:
            self._checking = False
            self._held.clear()

    def _promote(self, action: Promote) -> int:
        """Attach one standby as its device's session and send the welcome; 1 if done."""
        gw = self.gw
        entry = self._standby.pop(action.standby, None)
        if entry is None or entry.conn.closed:
            return 0
        conn, tc, ident = entry.conn, entry.tc, entry.ident
        try:
            if ident.serial in gw.revoked:
                raise Refused("revoked", "certificate revoked")
            if _expired(entry.cert, time.time()):  # parked for long: it may have expired since
                raise Refused("expired", "certificate expired")
            msg = entry.msg
            session = self._establish(
                conn, tc, ident, msg.services, msg.instance, msg.reconnects, True
            )
        except Refused as exc:
            gw.metrics.auth_failures[exc.reason] += 1
            log.info("standby of %s not promoted: %s", ident.name, exc.message)
            refusal = wire.Refused(exc.message, exc.reason, exc.retry_after_ms)
            conn.write(tc.send(refusal, conn.loop.time()))
            conn.close()
            return 0
        session.local = action.address  # the VIP: the session is stale here once it moves
        entry.session = session
        gw.metrics.tunnel_standby_promoted += 1
        return 1

    def _drop_revoked(self) -> None:
        revoked = self.gw.revoked
        for entry in [e for e in self._standby.values() if e.ident.serial in revoked]:
            log.warning("device %s: certificate revoked, closing its standby", entry.ident.name)
            now = entry.conn.loop.time()
            entry.conn.write(entry.tc.send(wire.Refused("certificate revoked", "revoked"), now))
            entry.conn.close()  # its task drops it from the table

    def _reconcile(self, device: str) -> None:
        """Sessions ended elsewhere (revocation, backlog) leave the registry too."""
        current = self.gw.sessions.get(device)
        held = self.registry.session_of(device)
        if held is not None and (current is None or current.sid != held):
            self.registry.detach(held, asyncio.get_running_loop().time())

    def _supersede(self, action: Supersede) -> None:
        old = self.gw.sessions.get(action.device)
        if old is None or old.sid != action.session:
            return
        if action.twins:
            log.warning(
                "device %s: sessions supersede each other (%d in a row); is this device's"
                " agent running twice? The loser is told to wait %.0f s",
                action.device,
                action.repeats,
                action.retry_after_ms / 1000,
            )
        # Closed here with the hint; gw.attach then finds it closed and only does the rest.
        old.close(wire.encode(wire.Superseded(action.retry_after_ms, action.same_instance)))

    def _data(self, conn: Conn, tc: TunnelConnection, ident: Identity, msg: wire.Data) -> None:
        session = self.gw.sessions.get(ident.name)
        if session is None or session.sid != msg.session:
            refusal = wire.Refused("not the current session of this device", "stale_session")
            conn.write(tc.send(refusal, conn.loop.time()))
            conn.close()
            return
        set_nodelay(conn.sock)
        if not session.add_data(msg.token, conn):
            conn.close()

    async def heartbeat(self) -> None:
        """One ping per interval to every agent; an agent that hears none for ~1 s probes."""
        gw = self.gw
        interval = gw.cfg.heartbeat_ms / 1000
        loop = asyncio.get_running_loop()
        next_expiry = 0.0
        frozen_at = 0
        ping = wire.encode(wire.Ping())
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
                self.registry.expire(now)
                for session in list(gw.sessions.values()):
                    if session.pool:
                        session.expire_pool(now - gw.cfg.pool_idle)
            sessions = list(gw.sessions.values())
            gone = self._lost_addresses(sessions)
            for i, session in enumerate(sessions):
                if i and i % 2000 == 0:
                    await asyncio.sleep(0)  # let other work in between: no long stalls
                if gone and session.local in gone:
                    # This node lost the address the agent dialled (the VIP moved away):
                    # the agent is reconnecting to the new holder; drop the stale session
                    # now so no user is routed to it here, instead of after dead_after.
                    self.stale_dropped += 1
                    gw.end_session(session)
                elif len(session.conn.wbuf) > MAX_PING_BACKLOG:
                    gw.end_session(session)
                elif not session.closed:
                    # One shared line for all (no per-session encode); the core's own
                    # per-connection timer is for drivers that keep one per session.
                    session.conn.write(ping)
                if session.conn.closed:
                    gw.end_session(session)

    def _lost_addresses(self, sessions: list[Session]) -> set[str]:
        """Addresses agents dialled that this host no longer has (one bind per address)."""
        addresses = {s.local for s in sessions if s.local}
        return {a for a in addresses if not address_is_local(a)}

    # ------------------------------------------------------------ connect

    async def _connect(
        self,
        conn: Conn,
        tc: TunnelConnection,
        ident: Identity,
        msg: wire.Connect,
        client: tuple[str, int],
    ) -> None:
        gw = self.gw
        principal = gw.policy.authenticate(None, ident, time.time())  # certificates: no I/O
        if isinstance(principal, AuthFailure):
            raise Refused("wrong_role", principal.reason)
        try:
            lease = gw.authorize_stream(
                principal,
                msg.device,
                msg.service,
                RouteKind.CONNECT,
                client[0],
                wire.ServiceKind.TCP,
            )
            try:
                data = await gw.open_upstream(msg.device, msg.service, None)
            except BaseException:
                lease.end("error")
                raise
        except StreamError as exc:
            conn.write(tc.send(wire.StreamRefused(exc.message, exc.reason), conn.loop.time()))
            await asyncio.wait_for(conn.drain(), 2.0)
            conn.close()
            return
        conn.write(tc.send(wire.StreamReady(), conn.loop.time()))
        await conn.drain()
        gw.pipe(lease, conn, data)
