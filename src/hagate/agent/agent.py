"""The device agent: a thin asyncio driver around :class:`hagate.tunnel.TunnelConnection`.

Sockets come from :mod:`hagate.net` (no asyncio transports: an idle agent costs one kernel
socket and OpenSSL's state); every protocol decision (what a line means, when to probe, when
the gateway counts as dead) is the sans-IO core's, tested by transcripts in tests/tunnel.

Reconnects after any loss on the schedule of :mod:`hagate.agent.redial` (a fast first
retry, steady jittered retries while the outage is young, then bounded growth). A session
that ended superseded (another agent runs with our certificate) or refused does not start a
new outage: the wait is the slow one, and the gateway's ``retry_after_ms`` hint is obeyed,
so two agents with one certificate back off instead of taking the device from each other.

The gateway pings every ``heartbeat_ms``. After two silent intervals the agent sends a probe:
if the VIP has moved, the node that now holds it answers with a TCP reset at once (so a moved
gateway is noticed within about a second); a live but busy gateway answers with a ping. Only
``dead_after_ms`` of silence (a frozen node that kept the VIP) counts as dead. A short
timeout for that would make every agent drop a merely busy gateway at the same moment.

Warm standby (v3, when the gateway's welcome lists the cluster's other nodes): the agent
also holds one idle, authenticated connection to each other node's own address, parked
there (no heartbeats: TCP keepalive only). The node that takes the VIP promotes it with a
welcome: that connection becomes the session at once, without a TCP or TLS handshake, and
the old session is dropped. After losing its session the agent waits up to
``[standby] patience`` for that promotion before redialling the VIP as before; a standby is
re-established afterwards to the node it left, on a slow jittered schedule (it may be dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from hagate.agent.config import AgentConfig, ClientConfig, LocalService
from hagate.net.backend import KERNEL, Backend
from hagate.net.conn import (
    WOULD_BLOCK,
    Conn,
    ProtocolError,
    parse_hostport,
    set_keepalive,
    set_nodelay,
)
from hagate.net.pipe import Pipe
from hagate.net.tls import client_context
from hagate.tunnel import wire
from hagate.tunnel.connection import (
    Closed,
    Event,
    Kind,
    PeerDead,
    Promoted,
    ProtocolViolation,
    Role,
    Sentinel,
    TunnelConnection,
)

log = logging.getLogger("hagate.agent")

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0
# An agent's own TLS handshake may wait this long once TCP is connected: in a storm the new
# master parks connections (accepted, no TLS yet) and serves them in order, so a patient
# agent is served once; one that gave up at 10 s lost its place, redialled after a back-off
# and came back behind everybody (the gateway drops a parked connection whose client left).
# Keepalive from the connect on notices a VIP that moved meanwhile (the new holder resets).
AGENT_HANDSHAKE_TIMEOUT = 30.0
DIAL_KEEPALIVE = (2, 1, 3)  # idle, interval, count (s): until the session's own keepalive
LOCAL_CONNECT_TIMEOUT = 5.0
MAX_SPARES = 16  # spare data connections a busy device may keep (the gateway's limit too)
SPARE_DECAY_S = 10.0  # halve the extra spares after this long without an on-demand open
HINT_JITTER = 0.1  # wait up to 10% longer than a retry_after hint, never shorter
# A resumed session keeps the ticket it was resumed with for this long (the gateway's
# stateless tickets may be offered again, and live for days): reading ``SSLSocket.session``
# copies the session through DER (the peer certificate included), 7 % of an agent
# process's CPU in a reconnection storm, for a ticket it already had.
TICKET_KEEP_S = 3600.0
# A standby that stood by this long before it ended starts its dials afresh; one that ended
# sooner (superseded by a twin's, refused, reset) keeps backing off up to max_delay.
STANDBY_SETTLED_S = 60.0


class Refused(Exception):
    """The gateway refused us (revoked, wrong role, ...): retrying soon will not help."""

    def __init__(self, message: str, code: str = "", retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after_ms / 1000


class SwitchedOver(EOFError):
    """A standby connection was promoted: the current session gives way to it."""

    def __init__(self) -> None:
        super().__init__("a standby connection was promoted to the session")


class Superseded(Exception):
    """A newer session of this device took over: another agent runs with our identity."""

    def __init__(self, retry_after_ms: int = 0, same_instance: bool = False) -> None:
        super().__init__("superseded by a newer session of this device")
        self.retry_after = retry_after_ms / 1000
        self.same_instance = same_instance


async def dial(
    client: ClientConfig,
    ctx: ssl.SSLContext,
    session: ssl.SSLSession | None = None,
    backend: Backend = KERNEL,
    on_connected: Callable[[], None] | None = None,
    timeout: float = HANDSHAKE_TIMEOUT,
) -> Conn:
    """A TLS connection to the gateway's tunnel port, handshake done within ``timeout``.

    With ``session`` (from the control connection) the handshake is a TLS 1.3 resumption:
    no certificate signatures, a fraction of the CPU of a full handshake on both ends. A
    gateway that does not know the session (the other node) simply does a full handshake.
    """
    # A fresh SYN every 0.25 s while unanswered: after a failover the new master's
    # gratuitous ARP is followed by a connect within ~0.25 s, not the kernel's 1-3 s SYN retry.
    sock = await backend.connect_staggered(client.host, client.port, CONNECT_TIMEOUT)
    if on_connected is not None:  # a gateway answered: a failure from here is not the VIP's
        on_connected()
    set_nodelay(sock)
    if timeout > HANDSHAKE_TIMEOUT:  # a patient dial: notice a moved VIP while waiting
        set_keepalive(sock, *DIAL_KEEPALIVE)
    ssock = ctx.wrap_socket(
        sock, server_hostname=client.server_name, do_handshake_on_connect=False, session=session
    )
    conn = Conn(ssock)
    try:
        await wait_for(conn.handshake(), timeout)
    except BaseException:
        conn.close()
        raise
    return conn


async def next_event(conn: Conn, tc: TunnelConnection) -> Event | None:
    """The next event of ``tc``, reading ``conn`` as needed; None once raw bytes follow."""
    while True:
        event = tc.next_event()
        if event is Sentinel.PAUSED:
            return None
        if not isinstance(event, Sentinel):
            return event
        data = await conn.recv_some()
        tc.receive_data(data, conn.loop.time())


async def wait_for(aw: Awaitable[T], timeout: float) -> T:
    """``asyncio.wait_for`` that never swallows this task's cancellation (see below).

    A swallowed cancel during a dial let the session that followed run for good: the task
    was cancelled, yet its agent stayed connected (a console test's teardown waited 10 s).
    """
    result = await asyncio.wait_for(aw, timeout)
    raise_if_cancelled()
    return result


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that an inner ``asyncio.wait_for`` swallowed.

    On Python 3.11, ``wait_for`` returns the inner result instead of raising when the task
    is cancelled in the same loop turn as the inner future completes (CPython gh-86296, fixed
    in 3.12). The redial loop would then go on forever and ``task.cancel()`` never end it;
    ``Task.cancelling()`` still counts the request, so the loop asks it once per attempt.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def fresh_ticket(
    held: ssl.SSLSession | None, sock: ssl.SSLSocket | ssl.SSLObject, now: float
) -> ssl.SSLSession | None:
    """The session to resume with next: the one held while it resumed and is young."""
    if held is not None and sock.session_reused and now - held.time < TICKET_KEEP_S:
        return held
    return sock.session


def raise_for(event: Event | None) -> None:
    """The exception that ends a session for a refusing or broken event."""
    if isinstance(event, wire.Refused):
        raise Refused(event.error, event.code, event.retry_after_ms)
    if isinstance(event, wire.Superseded):
        raise Superseded(event.retry_after_ms, event.same_instance)
    if isinstance(event, ProtocolViolation):
        raise ProtocolError(event.reason)
    if isinstance(event, PeerDead):
        raise TimeoutError(f"no heartbeat for {event.silent_s:.1f} s")
    if isinstance(event, wire.Bye):
        raise EOFError("the gateway ended the session")
    if isinstance(event, Closed) or event is None:
        raise EOFError("the gateway closed the connection")


class Agent:
    """One device's agent. ``await run()`` forever; ``connected`` is set while in session."""

    def __init__(
        self, cfg: AgentConfig, ctx: ssl.SSLContext | None = None, backend: Backend = KERNEL
    ) -> None:
        """``backend`` makes the sockets (tests pass hagate.net.backend.MemoryBackend)."""
        self.cfg = cfg
        self.backend = backend
        c = cfg.client
        self.ctx = ctx or client_context(c.cert, c.key, c.ca)
        self.services: dict[str, LocalService] = {s.spec.name: s for s in cfg.services}
        self.connected = asyncio.Event()
        self.routes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.sessions = 0  # sessions established so far
        self.superseded = 0  # sessions that ended because another agent took over
        self.last_error = ""
        self.instance = secrets.token_hex(8)  # tells the gateway a reconnect from a twin
        self._sid = ""
        self._pool_tasks: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool_size = 0
        self._established = False
        self._reached = False
        self._tls_session: ssl.SSLSession | None = None
        self._spares = 0
        self._last_demand = 0.0
        # Warm standby: endpoint -> its task; endpoints parked now; promotions to serve
        self._vip = ""  # the address the session dialled (a standby names it)
        self._standby_tasks: dict[str, asyncio.Task[None]] = {}
        self._parked: set[str] = set()
        self._promotions: list[tuple[Conn, TunnelConnection, wire.Welcome, ClientConfig]] = []
        self._data_client = cfg.client  # where data connections go: the session's node
        # the session loop waiting for a promotion (or for a parked standby's end)
        self._waiter: asyncio.Future[None] | None = None
        self._reader: _ControlReader | None = None
        self.promoted = 0  # sessions that began as a promoted standby
        self._version = 0  # the protocol version of the last session
        # Called with True when a session is up, False when it ends (a fleet runner's tally).
        self.on_change: Callable[[Agent, bool], None] | None = None

    async def run(self) -> None:
        """Sessions forever; between them the wait that :mod:`hagate.agent.redial` says."""
        try:
            await self._run()
        finally:
            for task in list(self._standby_tasks.values()):
                task.cancel()
            for conn, *_rest in self._promotions:
                conn.close()
            self._promotions.clear()

    async def _run(self) -> None:
        schedule = self.cfg.reconnect.plan()
        loop = asyncio.get_running_loop()
        attempt = 0  # failed attempts of this outage
        lost_at = loop.time()
        slow = False  # refused or superseded since the last good session
        busy = 0  # attempts in a row that reached a gateway and failed before the welcome
        while True:
            hint = 0.0
            keep_failures = False  # a superseded session is no success
            refused = False
            try:
                if self._promotions:
                    await self._serve_promoted(*self._promotions.pop(0))
                else:
                    await self._session()
                self.last_error = "session lost"
            except SwitchedOver as exc:
                self.last_error = str(exc)
            except Superseded as exc:
                if exc.same_instance:
                    # The newer session is this agent's own (a standby promoted across a
                    # redial), not a twin. A hint-less supersede from a cluster peer is one.
                    self.last_error = "replaced by this agent's newer connection"
                else:
                    self.superseded += 1
                    self.last_error = str(exc)
                    log.warning("%s; is this device's agent running twice?", self.last_error)
                    hint, keep_failures, refused = exc.retry_after, True, True
            except Refused as exc:
                self.last_error = f"refused: {exc}"
                log.error("gateway refused us: %s", exc)
                # One quick retry after a refused session gets the definitive answer at the
                # hello (e.g. revoked: then the slow wait); a hint (twin) is obeyed.
                hint, keep_failures, refused = exc.retry_after, exc.retry_after > 0, True
            except (OSError, EOFError, TimeoutError, ProtocolError, ssl.SSLError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                # The loss and the first failed redial at INFO; the rest of an outage's
                # attempts (4 a second while young) at DEBUG: a fleet of 10,000 logged
                # 40,000 lines a second while the VIP moved.
                level = logging.INFO if attempt <= 1 or self._established else logging.DEBUG
                c = self.cfg.client
                log.log(level, "gateway %s:%s: %s", c.host, c.port, str(exc) or type(exc).__name__)
            finally:
                self._end_session()
            raise_if_cancelled()
            now = loop.time()
            if self._established and not keep_failures:
                attempt, lost_at, slow, busy = 0, now, False, 0  # a new outage starts now
            elif refused:
                slow = True
            # A lost session (not a failed dial): wait for a standby's promotion, once.
            lost = self._established and not refused
            if lost and await self._promotion(self.cfg.standby.patience):
                continue  # a standby took over: no dial, no handshake
            busy = busy + 1 if self._reached and not self._established else 0
            attempt += 1
            delay = schedule.delay(attempt, now - lost_at, random.random(), slow, busy)
            if hint > 0:  # the gateway knows best (it sees both twins): never earlier
                delay = hint * random.uniform(1.0, 1.0 + HINT_JITTER)
            if self._standby_tasks or self._promotions:
                await self._promotion(delay, parked_only=False)  # a promotion cuts it short
            else:
                await asyncio.sleep(delay)

    async def _promotion(self, timeout: float, parked_only: bool = True) -> bool:
        """Wait up to ``timeout`` for a standby's promotion; True once one is ready.

        ``parked_only``: give up at once when no standby is parked (it cannot be promoted:
        today's redial). Otherwise the whole ``timeout`` is waited (the redial delay), only
        cut short by a promotion.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._promotions:
            if parked_only and not self._parked:
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            # A future and a timer, not wait_for: this is also every redial's delay while
            # standbys run (thousands of agents, four waits a second each in an outage).
            fut: asyncio.Future[None] = loop.create_future()
            self._waiter = fut
            timer = loop.call_later(left, _settle, fut)
            try:
                await fut
            finally:
                timer.cancel()
                if self._waiter is fut:
                    self._waiter = None
        return True

    async def _session(self) -> None:
        self._established = False
        self._reached = False  # set once a gateway answers the SYN (see redial's `busy`)
        # The last session's ticket: a resumed handshake on either node (docs/tls.md).
        conn = await dial(
            self.cfg.client,
            self.ctx,
            self._tls_session,
            self.backend,
            self._hit,
            AGENT_HANDSHAKE_TIMEOUT,
        )
        try:
            await self._serve(conn)
        finally:
            conn.close()

    async def _serve(self, conn: Conn) -> None:
        tc = TunnelConnection(Role.AGENT, Kind.CONTROL)
        hello = wire.Hello(
            tuple(s.spec for s in self.cfg.services),
            self.sessions,
            wire.VERSION,
            self.instance,
            standby=self.cfg.standby.enabled,
        )
        conn.write(tc.send(hello, conn.loop.time()))
        welcome = await wait_for(next_event(conn, tc), HANDSHAKE_TIMEOUT)
        if not isinstance(welcome, wire.Welcome):
            raise_for(welcome)
            raise ProtocolError(f"expected welcome, got {type(welcome).__name__}")
        # A promotion that came while we dialled (our patience ran out) stays queued: if the
        # gateway attached it after this session, this one is superseded (hint 0) and the
        # promoted one is served at once; if before, it was superseded there and ends soon.
        self._vip = dialled_address(conn, self.cfg.client.host)
        self._data_client = self.cfg.client
        await self._serve_session(conn, tc, welcome, self.cfg.standby.first)

    async def _serve_promoted(
        self, conn: Conn, tc: TunnelConnection, welcome: wire.Welcome, client: ClientConfig
    ) -> None:
        self._established = False
        self._data_client = client  # that node's own address: it holds the VIP too
        self._reached = True
        self.promoted += 1
        try:
            await self._serve_session(conn, tc, welcome, self.cfg.standby.after_promotion)
        finally:
            conn.close()

    async def _serve_session(
        self, conn: Conn, tc: TunnelConnection, welcome: wire.Welcome, standby_delay: float
    ) -> None:
        self._sid = welcome.session
        self._pool_size = welcome.pool
        self.routes = dict(welcome.routes)
        self.errors = dict(welcome.errors)
        for name, err in self.errors.items():
            log.error("service %s has no route: %s", name, err)
        self._established = True
        if isinstance(conn.sock, ssl.SSLSocket):
            self._tls_session = fresh_ticket(self._tls_session, conn.sock, time.time())
        self.sessions += 1
        self._version = tc.version
        self.connected.set()
        if self.on_change is not None:
            self.on_change(self, True)
        log.info("session %s up (v%d); routes %s", self._sid, tc.version, self.routes)
        if not tc.standby:  # a promoted standby has had its keepalive since it parked
            set_keepalive(conn.sock)
        if welcome.pool_idle_s < 0:  # else spares open once streams are asked for
            self._top_up()
        if self.cfg.standby.enabled:
            self._sync_standbys(welcome.standby, standby_delay)
        self._reader = _ControlReader(conn, tc, self._on_open)
        try:
            await self._reader.run()
        finally:
            self._reader = None

    # ------------------------------------------------------------ standbys

    def _standby_changed(self) -> None:
        """A promotion is queued or a parked standby ended: wake the session loop."""
        if self._waiter is not None:
            _settle(self._waiter)

    def _sync_standbys(self, endpoints: tuple[str, ...], delay: float) -> None:
        """One standby task per endpoint the welcome named (the other nodes), none else."""
        for endpoint, task in list(self._standby_tasks.items()):
            if endpoint not in endpoints:
                task.cancel()
        for endpoint in endpoints:
            if endpoint not in self._standby_tasks:
                task = asyncio.create_task(self._standby(endpoint, delay))
                self._standby_tasks[endpoint] = task
                task.add_done_callback(functools.partial(self._standby_done, endpoint))

    def _standby_done(self, endpoint: str, task: asyncio.Task[None]) -> None:
        if self._standby_tasks.get(endpoint) is task:
            del self._standby_tasks[endpoint]

    async def _standby(self, endpoint: str, first: float) -> None:
        """Hold a standby connection to ``endpoint`` until it is promoted (then hand it to
        the session loop and end). Dials wait ``first`` (jittered), then back off doubling
        up to ``max_delay``: a dead node costs one refused connect per wait."""
        cfg = self.cfg.standby
        try:
            host, port = parse_hostport(endpoint)
        except ValueError:
            log.warning("gateway named a bad standby endpoint %r", endpoint)
            return
        client = replace(self.cfg.client, host=host, port=port)
        failures = 0
        delay = first * random.uniform(0.5, 1.5)
        while True:
            await asyncio.sleep(delay)
            failures += 1
            delay = min(cfg.max_delay, first * 2.0**failures) * random.uniform(0.5, 1.0)
            if not self._vip:
                continue
            try:
                conn = await dial(client, self.ctx, self._tls_session, self.backend)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.debug("standby %s: %s", endpoint, exc)
                continue
            promoted = False
            since = time.monotonic()
            try:
                promoted = await self._stand_by(endpoint, conn, client)
            except Refused as exc:
                log.info("standby %s refused: %s", endpoint, exc)
                if exc.retry_after <= 0:
                    return  # e.g. a gateway without standbys: not again in this session
                delay = max(delay, exc.retry_after)
            except (OSError, EOFError, TimeoutError, ProtocolError, ssl.SSLError) as exc:
                log.debug("standby %s: %s", endpoint, exc)
            except Superseded:
                pass  # a newer standby of this device there (ours, or a twin's)
            finally:
                if not promoted:
                    conn.close()
            if promoted:
                return
            if time.monotonic() - since >= STANDBY_SETTLED_S:
                failures = 0  # it stood by for long: its end is news (e.g. the node died)
                delay = first * random.uniform(0.5, 1.5)

    async def _stand_by(self, endpoint: str, conn: Conn, client: ClientConfig) -> bool:
        """Park ``conn`` as a standby; True once promoted (queued for the session loop)."""
        tc = TunnelConnection(Role.AGENT, Kind.CONTROL)
        services = tuple(s.spec for s in self.cfg.services)
        msg = wire.Standby(self._vip, services, self.sessions, wire.VERSION, self.instance)
        conn.write(tc.send(msg, conn.loop.time()))
        event = await wait_for(next_event(conn, tc), HANDSHAKE_TIMEOUT)
        if isinstance(event, wire.StandingBy):
            set_keepalive(conn.sock)  # the only liveness check of a parked connection
            self._parked.add(endpoint)
            try:
                event = await next_event(conn, tc)
            finally:
                self._parked.discard(endpoint)
                self._standby_changed()
        if not isinstance(event, Promoted):
            raise_for(event)
            raise ProtocolError(f"standby: unexpected {type(event).__name__}")
        log.debug("standby at %s promoted to the session", endpoint)
        self._promotions.append((conn, tc, event.welcome, client))
        self._standby_changed()
        if self._reader is not None:
            self._reader.switch()  # the old session gives way (its node lost the VIP)
        return True

    def _hit(self) -> None:
        self._reached = True

    def _on_open(self, msg: wire.Open) -> None:
        # No spare was ready: this device opens streams faster than it keeps spares.
        if self._pool_size > 0:
            self._spares = min(MAX_SPARES, max(self._spares, self._pool_size) + 1)
            self._last_demand = asyncio.get_running_loop().time()
        self._spawn_data(msg.token)

    def _end_session(self) -> None:
        if self.connected.is_set() and self.on_change is not None:
            self.on_change(self, False)
        self.connected.clear()
        self._sid = ""
        for task in list(self._pool_tasks):
            task.cancel()

    def _top_up(self) -> None:
        """Keep ``pool`` spares, more while streams are asked for faster than that."""
        now = asyncio.get_running_loop().time()
        if self._spares > self._pool_size and now - self._last_demand > SPARE_DECAY_S:
            self._spares = max(self._pool_size, self._spares // 2)
            self._last_demand = now
        for _ in range(max(self._spares, self._pool_size) - len(self._pool_tasks)):
            self._spawn_data("")

    def _spawn_data(self, token: str) -> None:
        task = asyncio.create_task(self._data(self._sid, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if not token:
            self._pool_tasks.add(task)
            task.add_done_callback(self._pool_tasks.discard)

    async def _data(self, sid: str, token: str) -> None:
        """One data connection: announce it, wait for a stream, connect locally, pipe."""
        task = asyncio.current_task()
        try:
            conn = await dial(self._data_client, self.ctx, self._tls_session, self.backend)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("data connection failed: %s", exc)
            return
        tc = TunnelConnection(Role.AGENT, Kind.DATA)
        try:
            conn.write(tc.send(wire.Data(sid, token), conn.loop.time()))
            event = await next_event(conn, tc)
            if task is not None:
                self._pool_tasks.discard(task)  # in use now: survives the session's end
            if not isinstance(event, wire.StreamOpen):  # e.g. refused: not the session now
                conn.close()
                return
            if sid == self._sid:
                self._top_up()  # a device in use keeps spare connections ready
            svc = self.services.get(event.service)
            if svc is None:
                refusal = wire.StreamRefused("no such service", "no_service")
                conn.write(tc.send(refusal, conn.loop.time()))
                conn.close()
                return
            try:
                local = await self.backend.connect(
                    svc.target_host, svc.target_port, LOCAL_CONNECT_TIMEOUT
                )
            except (ConnectionError, OSError) as exc:
                refusal = wire.StreamRefused(f"{svc.spec.name}: {exc}", "device_error")
                conn.write(tc.send(refusal, conn.loop.time()))
                await wait_for(conn.drain(), 2.0)
                conn.close()
                return
            set_nodelay(local)
            conn.write(tc.send(wire.StreamReady(), conn.loop.time()))
            await conn.drain()
            Pipe(local, conn.detach()).start(b"", tc.trailing_data)
        except (OSError, EOFError, ProtocolError, TimeoutError):
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def dialled_address(conn: Conn, fallback: str) -> str:
    """The IP address ``conn`` reached (the VIP), or ``fallback`` on a non-IP socket."""
    try:
        if conn.sock.family in (socket.AF_INET, socket.AF_INET6):
            return str(conn.sock.getpeername()[0])
    except OSError:
        pass
    return fallback


async def run_agent(cfg: AgentConfig) -> None:
    agent = Agent(cfg)
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run()


class _ControlReader:
    """Feeds the control connection to the core from callbacks: a ping costs one read.

    One timer, at the core's ``get_timer()``; it is not moved when a ping arrives (that would
    be a heap operation per ping): when it fires early the core does nothing and says when
    to come back. Readable data is handled before due timers in a loop iteration, so a
    process that was itself late does not mistake its own delay for the gateway's silence.
    """

    def __init__(
        self, conn: Conn, tc: TunnelConnection, on_open: Callable[[wire.Open], None]
    ) -> None:
        self.conn = conn
        self.tc = tc
        self.on_open = on_open
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        conn = self.conn
        self.loop.add_reader(conn.fd, self._on_readable)
        self._events()  # lines that came with the welcome
        self._arm()
        try:
            await self.lost
        finally:
            if self.timer is not None:
                self.timer.cancel()
            if not conn.closed:
                self.loop.remove_reader(conn.fd)

    def _fail(self, exc: BaseException) -> None:
        if not self.lost.done():
            self.lost.set_exception(exc)

    def switch(self) -> None:
        """A standby was promoted: end this session (its connection is closed after)."""
        self._fail(SwitchedOver())

    def _arm(self) -> None:
        when = self.tc.get_timer()
        if when is not None and not self.lost.done():
            self.timer = self.loop.call_at(when, self._on_timer)

    def _on_readable(self) -> None:
        try:
            chunk = self.conn.sock.recv(65536)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self._fail(exc)
            return
        self.tc.receive_data(chunk, self.loop.time())
        self._events()

    def _events(self) -> None:
        tc = self.tc
        while True:
            event = tc.next_event()
            if isinstance(event, Sentinel):
                return
            if isinstance(event, wire.Ping):
                continue
            if isinstance(event, wire.Open):
                self.on_open(event)
                continue
            try:
                raise_for(event)
                raise ProtocolError(f"unexpected {type(event).__name__}")
            except Exception as exc:  # Superseded, Refused, ProtocolError, EOF, timeout
                self._fail(exc)
                return

    def _on_timer(self) -> None:
        self.timer = None
        out = self.tc.handle_timer(self.loop.time())
        if out:
            self.conn.write(out)
            if self.conn.closed:  # the write failed: reset by the new VIP holder
                self._fail(ConnectionResetError("connection reset"))
                return
        self._events()  # PeerDead
        self._arm()
