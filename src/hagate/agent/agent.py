"""The device agent: dial out to the gateway, keep the session, serve stream requests.

Reconnects after any loss: a few fast retries, then jittered exponential backoff (capped).
The gateway pings every ``heartbeat_ms``. After two silent intervals the agent sends a probe:
if the VIP has moved, the node that now holds it answers with a TCP reset at once (so a moved
gateway is noticed within about a second); a live but busy gateway answers with a ping. Only
``dead_after_ms`` of silence (a frozen node that kept the VIP) counts as dead. A short
timeout for that would make every agent drop a merely busy gateway at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

from hagate.agent.config import AgentConfig, ClientConfig, LocalService
from hagate.gateway.protocol import (
    MAX_LINE,
    PING,
    PROBE,
    VERSION,
    decode,
    encode,
    read_message,
)
from hagate.net.conn import (
    WOULD_BLOCK,
    Conn,
    ProtocolError,
    open_tcp,
    open_tcp_staggered,
    set_keepalive,
    set_nodelay,
)
from hagate.net.pipe import Pipe
from hagate.net.tls import client_context

log = logging.getLogger("hagate.agent")

CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0
LOCAL_CONNECT_TIMEOUT = 5.0
MAX_SPARES = 16  # spare data connections a busy device may keep (the gateway's limit too)
SPARE_DECAY_S = 10.0  # halve the extra spares after this long without an on-demand open


class Refused(Exception):
    """The gateway refused us (revoked, wrong role, ...): retrying soon will not help."""


class Superseded(Exception):
    """A newer session of this device took over: another agent runs with our identity."""


async def dial(
    client: ClientConfig, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> Conn:
    """A TLS connection to the gateway's tunnel port, handshake done.

    With ``session`` (from the control connection) the handshake is a TLS 1.3 resumption:
    no certificate signatures, a fraction of the CPU of a full handshake on both ends. A
    gateway that does not know the session (the other node) simply does a full handshake.
    """
    # A fresh SYN every 0.25 s while unanswered: after a failover the new master's
    # gratuitous ARP is followed by a connect within ~0.25 s, not the kernel's 1-3 s SYN retry.
    sock = await open_tcp_staggered(client.host, client.port, CONNECT_TIMEOUT)
    set_nodelay(sock)
    ssock = ctx.wrap_socket(
        sock, server_hostname=client.server_name, do_handshake_on_connect=False, session=session
    )
    conn = Conn(ssock)
    try:
        await asyncio.wait_for(conn.handshake(), HANDSHAKE_TIMEOUT)
    except BaseException:
        conn.close()
        raise
    return conn


class Agent:
    """One device's agent. ``await run()`` forever; ``connected`` is set while in session."""

    def __init__(self, cfg: AgentConfig, ctx: ssl.SSLContext | None = None) -> None:
        self.cfg = cfg
        c = cfg.client
        self.ctx = ctx or client_context(c.cert, c.key, c.ca)
        self.services: dict[str, LocalService] = {s.spec.name: s for s in cfg.services}
        self.connected = asyncio.Event()
        self.routes: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.sessions = 0  # sessions established so far
        self.last_error = ""
        self._sid = ""
        self._pool_tasks: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool_size = 0
        self._established = False
        self._tls_session: ssl.SSLSession | None = None
        self._spares = 0
        self._last_demand = 0.0

    async def run(self) -> None:
        rc = self.cfg.reconnect
        failures = 0
        while True:
            try:
                await self._session()
                self.last_error = "session lost"
            except Superseded:
                self.last_error = "superseded by a newer session of this device"
                log.warning("%s; is this device's agent running twice?", self.last_error)
                failures = max(failures, rc.fast_retries + 10)
            except Refused as exc:
                self.last_error = f"refused: {exc}"
                log.error("gateway refused us: %s", exc)
                failures = max(failures, rc.fast_retries + 10)
            except (OSError, EOFError, TimeoutError, ProtocolError, ssl.SSLError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("gateway %s:%s: %s", self.cfg.client.host, self.cfg.client.port, exc)
            finally:
                self._end_session()
            if self._established:
                failures = 0
            failures += 1
            await asyncio.sleep(self._delay(failures))

    def _delay(self, failures: int) -> float:
        """Fast retries first, then exponential backoff with jitter, capped."""
        rc = self.cfg.reconnect
        if failures <= rc.fast_retries:
            return rc.fast_delay * random.uniform(0.5, 1.5)
        step = min(rc.max_delay, rc.base_delay * 2.0 ** (failures - rc.fast_retries - 1))
        return float(step / 2 + random.uniform(0, step / 2))

    async def _session(self) -> None:
        self._established = False
        conn = await dial(self.cfg.client, self.ctx)
        try:
            await self._serve(conn)
        finally:
            conn.close()

    async def _serve(self, conn: Conn) -> None:
        services = [s.spec.to_json() for s in self.cfg.services]
        conn.write(encode(op="hello", v=VERSION, services=services, reconnects=self.sessions))
        msg = await asyncio.wait_for(read_message(conn), HANDSHAKE_TIMEOUT)
        if msg.get("op") == "error":
            raise Refused(str(msg.get("error")))
        if msg.get("op") != "welcome":
            raise ProtocolError(f"expected welcome, got {msg.get('op')!r}")
        self._sid = str(msg.get("session", ""))
        heartbeat = max(0.05, float(msg.get("heartbeat_ms", 300)) / 1000)
        self._pool_size = int(msg.get("pool", 1))
        eager = float(msg.get("pool_idle_s", -1)) < 0
        self.routes = dict(msg.get("routes") or {})
        self.errors = dict(msg.get("errors") or {})
        for name, err in self.errors.items():
            log.error("service %s has no route: %s", name, err)
        self._established = True
        self._tls_session = conn.sock.session if isinstance(conn.sock, ssl.SSLSocket) else None
        self.sessions += 1
        self.connected.set()
        log.info("session %s up; routes %s", self._sid, self.routes)
        set_keepalive(conn.sock)
        if eager:  # else spares are opened once streams are asked for (idle devices hold none)
            self._top_up()
        dead_after = max(2 * heartbeat, float(msg.get("dead_after_ms", 3000)) / 1000)
        await _ControlReader(conn, self._handle, heartbeat, dead_after).run()

    def _handle(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "ping":
            return
        if op == "open":
            # No spare was ready: this device opens streams faster than it keeps spares.
            if self._pool_size > 0:
                self._spares = min(MAX_SPARES, max(self._spares, self._pool_size) + 1)
                self._last_demand = asyncio.get_running_loop().time()
            self._spawn_data(str(msg.get("token", "")))
        elif op == "superseded":
            raise Superseded()
        elif op == "error":
            raise Refused(str(msg.get("error")))

    def _end_session(self) -> None:
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
            conn = await dial(self.cfg.client, self.ctx, self._tls_session)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("data connection failed: %s", exc)
            return
        try:
            conn.write(encode(op="data", session=sid, token=token))
            msg = await read_message(conn)
            if task is not None:
                self._pool_tasks.discard(task)  # in use now: survives the session's end
            if msg.get("op") != "stream":  # e.g. an error: not the gateway's session any more
                conn.close()
                return
            if sid == self._sid:
                self._top_up()  # a device in use keeps spare connections ready
            svc = self.services.get(str(msg.get("service")))
            if svc is None:
                conn.write(encode(ok=False, error="no such service"))
                conn.close()
                return
            try:
                local = await open_tcp(svc.target_host, svc.target_port, LOCAL_CONNECT_TIMEOUT)
            except (ConnectionError, OSError) as exc:
                conn.write(encode(ok=False, error=f"{svc.spec.name}: {exc}"))
                await asyncio.wait_for(conn.drain(), 2.0)
                conn.close()
                return
            set_nodelay(local)
            conn.write(encode(ok=True))
            await conn.drain()
            rest = bytes(conn.rbuf)
            Pipe(local, conn.detach()).start(b"", rest)
        except (OSError, EOFError, ProtocolError, TimeoutError):
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise


async def run_agent(cfg: AgentConfig) -> None:
    agent = Agent(cfg)
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run()


class _ControlReader:
    """Reads the control connection from callbacks, not a coroutine: a ping costs one read.

    A timer every heartbeat interval checks the silence: after two intervals it sends a probe
    (a moved VIP answers it with a reset; a busy gateway with a ping), after ``dead_after``
    it gives up. Readable data is handled before due timers in a loop iteration, so a process
    that was itself late does not mistake its own delay for the gateway's silence.
    """

    def __init__(
        self,
        conn: Conn,
        handle: Callable[[dict[str, Any]], None],
        heartbeat: float,
        dead_after: float,
    ) -> None:
        self.conn = conn
        self.handle = handle
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.loop = asyncio.get_running_loop()
        self.heard = self.loop.time()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.probed = 0.0  # when the last probe went out (one per second of silence at most)

    async def run(self) -> None:
        conn = self.conn
        self.loop.add_reader(conn.fd, self._on_readable)
        self.timer = self.loop.call_later(self.heartbeat, self._check)
        if conn.rbuf:  # lines that came with the welcome
            self.loop.call_soon(self._lines)
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

    def _on_readable(self) -> None:
        conn = self.conn
        try:
            chunk = conn.sock.recv(65536)
        except WOULD_BLOCK:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not chunk:
            self._fail(EOFError("the gateway closed the connection"))
            return
        conn.rbuf += chunk
        self._lines()

    def _lines(self) -> None:
        rbuf = self.conn.rbuf
        self.heard = self.loop.time()
        try:
            while (i := rbuf.find(b"\n")) >= 0:
                line = bytes(rbuf[: i + 1])
                del rbuf[: i + 1]
                if line != PING:
                    self.handle(decode(line))
            if len(rbuf) > MAX_LINE:
                raise ProtocolError("control line too long")
        except Exception as exc:  # Superseded, Refused, ProtocolError
            self._fail(exc)

    def _check(self) -> None:
        silent = self.loop.time() - self.heard
        if silent >= self.dead_after:
            self._fail(TimeoutError(f"no heartbeat for {silent:.1f} s"))
            return
        now = self.loop.time()
        if silent >= 2 * self.heartbeat and now - self.probed >= max(1.0, 3 * self.heartbeat):
            # Rarely: a busy gateway must not get a probe from every agent every interval.
            self.probed = now
            self.conn.write(PROBE)
            if self.conn.closed:  # the write failed: reset by the new VIP holder
                self._fail(ConnectionResetError("connection reset"))
                return
        self.timer = self.loop.call_later(self.heartbeat, self._check)
