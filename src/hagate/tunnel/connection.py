"""One tunnel connection as a sans-IO state machine (the h11/wsproto pattern).

The driver feeds bytes with :meth:`TunnelConnection.receive_data`, pulls typed events with
:meth:`~TunnelConnection.next_event` until ``NEED_DATA`` (or ``PAUSED`` once the connection
carries raw stream bytes), writes what :meth:`~TunnelConnection.send` and
:meth:`~TunnelConnection.handle_timer` return, and wakes up at
:meth:`~TunnelConnection.get_timer`. No sockets, no clock: ``now`` is passed in, so the same
machine runs in the gateway, in the agent and in transcript tests on a virtual clock.

Peer garbage never raises: it becomes one :class:`ProtocolViolation` event (with a status
hint) and the connection is closed; only our own misuse (sending what the state does not
allow) raises :class:`LocalProtocolError`, which is a bug in the driver.

Who sends what (see docs/tunnel-wire.md): the dialling side (``Role.AGENT``: an agent, or a
user's ``connect``) speaks first; its first message fixes the connection's :class:`Kind`.

A standby connection (v3) is a control connection that starts with ``standby`` instead of
``hello``: the gateway answers ``standing_by`` and the connection rests in ``STANDBY`` (no
heartbeat, no probe, no dead-peer timer: TCP keepalive is its liveness check) until the
gateway promotes it with a ``welcome``; from then on it is a session like any other. The
agent side reports the promotion as :class:`Promoted`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from hagate.tunnel.wire import (
    BAD_MESSAGE,
    BAD_VERSION,
    MAX_LINE,
    MIN_VERSION,
    PING_LINE,
    STANDBY_VERSION,
    TOO_LONG,
    VERSION,
    Bye,
    Connect,
    Data,
    Hello,
    Message,
    Open,
    Ping,
    Probe,
    Refused,
    Standby,
    StandingBy,
    StreamOpen,
    StreamReady,
    StreamRefused,
    Superseded,
    Welcome,
    WireError,
    decode,
    encode,
)

EPSILON = 1e-9  # timers compare float clocks; a deadline computed as a sum may be 1 ulp late
MIN_HEARTBEAT_S = 0.05
MIN_PROBE_GAP_S = 1.0  # at most one probe per this long (a busy gateway, 10k agents)


class Role(Enum):
    GATEWAY = "gateway"
    AGENT = "agent"  # the dialling side: a device agent, or a user's `connect`


class Kind(Enum):
    CONTROL = "control"  # hello/welcome, heartbeats, open, superseded
    DATA = "data"  # one spare or requested connection that will carry one stream
    CONNECT = "connect"  # a user's stream to a device service


class State(Enum):
    START = "START"  # nothing exchanged yet
    HELLO = "HELLO"  # hello sent (agent) or received (gateway), welcome pending
    STANDBY = "STANDBY"  # a parked standby connection (v3): a welcome promotes it
    ESTABLISHED = "ESTABLISHED"  # a control session
    IDLE = "IDLE"  # a data connection waiting for its stream
    OPENING = "OPENING"  # a stream asked for: one answer line pending
    RAW = "RAW"  # the stream is connected: raw bytes both ways, no more lines
    CLOSED = "CLOSED"


class Sentinel(Enum):
    NEED_DATA = "NEED_DATA"  # feed more bytes (or wait for the timer)
    PAUSED = "PAUSED"  # no more lines: the rest is raw stream bytes, or the end


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


@dataclass(frozen=True, slots=True)
class PeerDead:
    """Agent side: no byte from the gateway for ``dead_after``; the session is over."""

    silent_s: float


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer sent something we cannot accept; the connection is over.

    The gateway may still :meth:`~TunnelConnection.send` one :class:`Refused` to say why.
    """

    reason: str
    status_hint: int = BAD_MESSAGE


@dataclass(frozen=True, slots=True)
class Promoted:
    """Agent side: the gateway promoted this standby connection to the device's session.

    The connection is ``ESTABLISHED`` now, with ``welcome``'s timers, exactly as after a
    hello; the agent makes it its session (and drops the old one if it is still open).
    """

    welcome: Welcome


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed its side (end of stream) with no line pending."""


Event = Message | PeerDead | ProtocolViolation | Promoted | Closed


class LocalProtocolError(Exception):
    """We tried to send what the protocol does not allow now: a bug in the driver."""


class TunnelConnection:
    """One TLS connection of the tunnel port, from one side's point of view."""

    def __init__(self, role: Role, kind: Kind | None = None) -> None:
        self.role = role
        self.kind = kind  # fixed by the first message if not given
        self.state = State.START
        self.version = VERSION  # the session's version, once negotiated
        self.heartbeat = 0.0
        self.dead_after = 0.0
        self._buf = bytearray()
        self._events: list[Event] = []
        self._eof = False
        self._in_raw = False  # the peer's bytes from here on are stream bytes
        self._may_refuse = False  # after a violation: one Refused may still be sent
        self._hello_version = VERSION
        self.standby = False  # a standby connection (v3), parked or promoted
        self._heard = 0.0
        self._probed = -math.inf
        self._next_ping = math.inf

    # ------------------------------------------------------------------------ input

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the peer; ``b""`` means it closed its side."""
        if data:
            self._heard = now
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | Sentinel:
        if self._events:
            return self._events.pop(0)
        if self.state is State.CLOSED:
            return PAUSED
        if self._in_raw:
            return PAUSED
        buf = self._buf
        i = buf.find(b"\n", 0, MAX_LINE)
        if i < 0:
            if len(buf) >= MAX_LINE:
                return self._violation(f"line longer than {MAX_LINE} bytes", TOO_LONG)
            if self._eof:
                self.state = State.CLOSED
                return Closed()
            return NEED_DATA
        line = bytes(buf[: i + 1])
        del buf[: i + 1]
        try:
            msg = decode(line)
        except WireError as exc:
            return self._violation(exc.reason, exc.status_hint)
        return self._received(msg)

    @property
    def raw_input(self) -> bool:
        """True once the peer's bytes are stream bytes (after a connect or stream line)."""
        return self._in_raw

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last line: stream bytes, once the state is RAW."""
        return bytes(self._buf)

    def _violation(self, reason: str, hint: int = BAD_MESSAGE) -> ProtocolViolation:
        self.state = State.CLOSED
        self._may_refuse = self.role is Role.GATEWAY
        return ProtocolViolation(reason, hint)

    def _unexpected(self, msg: Message) -> ProtocolViolation:
        what = type(msg).__name__
        where = self.kind.value if self.kind else "new"
        return self._violation(f"unexpected {what} on a {where} connection in {self.state.value}")

    def _received(self, msg: Message) -> Event:
        if self.role is Role.GATEWAY:
            return self._gateway_receives(msg)
        return self._agent_receives(msg)

    def _gateway_receives(self, msg: Message) -> Event:
        state = self.state
        if state is State.START:
            if isinstance(msg, Hello) and self.kind in (None, Kind.CONTROL):
                if msg.version < MIN_VERSION:
                    return self._violation(
                        f"protocol version {msg.version} is not supported"
                        f" (this gateway speaks {MIN_VERSION} to {VERSION})",
                        BAD_VERSION,
                    )
                self.kind, self.state = Kind.CONTROL, State.HELLO
                self._hello_version = self.version = min(msg.version, VERSION)
                return msg
            if isinstance(msg, Standby) and self.kind in (None, Kind.CONTROL):
                if msg.version < STANDBY_VERSION:
                    return self._violation(
                        f"a standby connection needs protocol version {STANDBY_VERSION}"
                        f" or newer, got {msg.version}",
                        BAD_VERSION,
                    )
                self.kind, self.state, self.standby = Kind.CONTROL, State.HELLO, True
                self._hello_version = self.version = min(msg.version, VERSION)
                return msg
            if isinstance(msg, Data) and self.kind in (None, Kind.DATA):
                self.kind, self.state = Kind.DATA, State.IDLE
                return msg
            if isinstance(msg, Connect) and self.kind in (None, Kind.CONNECT):
                self.kind, self.state = Kind.CONNECT, State.OPENING
                self._in_raw = True  # user bytes may follow the connect line at once
                return msg
            return self._violation(
                f"expected hello, data or connect first, got {type(msg).__name__}"
            )
        if state in (State.HELLO, State.ESTABLISHED) and isinstance(msg, (Probe, Bye)):
            if isinstance(msg, Bye):
                self.state = State.CLOSED
            return msg
        if state is State.STANDBY and isinstance(msg, Bye):  # a parked one never probes
            self.state = State.CLOSED
            return msg
        if state is State.OPENING and self.kind is Kind.DATA:
            if isinstance(msg, StreamReady):
                self.state, self._in_raw = State.RAW, True
                return msg
            if isinstance(msg, StreamRefused):
                self.state = State.CLOSED
                return msg
        return self._unexpected(msg)

    def _agent_receives(self, msg: Message) -> Event:
        state = self.state
        if state is State.HELLO and self.standby and isinstance(msg, StandingBy):
            if not STANDBY_VERSION <= msg.version <= self._hello_version:
                return self._violation(
                    f"the gateway parked a standby at protocol version {msg.version}"
                    f" (we asked for {self._hello_version})",
                    BAD_VERSION,
                )
            self.version = msg.version
            self.state = State.STANDBY
            return msg
        if isinstance(msg, Welcome) and (
            (state is State.HELLO and not self.standby) or state is State.STANDBY
        ):
            low = STANDBY_VERSION if self.standby else MIN_VERSION
            if not low <= msg.version <= self._hello_version:
                return self._violation(
                    f"the gateway answered protocol version {msg.version}"
                    f" (we asked for {self._hello_version}, accept {low} or newer)",
                    BAD_VERSION,
                )
            self.version = msg.version
            self.state = State.ESTABLISHED
            self.heartbeat = max(MIN_HEARTBEAT_S, msg.heartbeat_ms / 1000)
            self.dead_after = max(2 * self.heartbeat, msg.dead_after_ms / 1000)
            return Promoted(msg) if self.standby else msg
        if state is State.STANDBY and isinstance(msg, (Superseded, Bye)):
            self.state = State.CLOSED  # a newer standby of this device, or the node stops
            return msg
        if state is State.ESTABLISHED:
            if isinstance(msg, (Ping, Open)):
                return msg
            if isinstance(msg, (Superseded, Bye)):
                self.state = State.CLOSED
                return msg
        if state is State.IDLE and isinstance(msg, StreamOpen):
            self.state, self._in_raw = State.OPENING, True  # user bytes follow the line
            return msg
        if state is State.OPENING and self.kind is Kind.CONNECT:
            if isinstance(msg, StreamReady):
                self.state, self._in_raw = State.RAW, True
                return msg
            if isinstance(msg, StreamRefused):
                self.state = State.CLOSED
                return msg
        if isinstance(msg, Refused) and state is not State.START:
            self.state = State.CLOSED  # the gateway may refuse at any point before raw bytes
            return msg
        return self._unexpected(msg)

    # ----------------------------------------------------------------------- output

    def send(self, msg: Message, now: float) -> bytes:
        """The bytes to write for ``msg``; raises :class:`LocalProtocolError` if not allowed."""
        if not self._sent(msg, now):
            what = type(msg).__name__
            raise LocalProtocolError(
                f"{self.role.value} may not send {what} on a"
                f" {self.kind.value if self.kind else 'new'} connection in {self.state.value}"
            )
        return encode(msg)

    def _sent(self, msg: Message, now: float) -> bool:
        if isinstance(msg, Refused) and self.role is Role.GATEWAY:
            if self.state is State.RAW or (self.state is State.CLOSED and not self._may_refuse):
                return False
            self.state, self._may_refuse = State.CLOSED, False
            return True
        if self.state is State.CLOSED:
            return False
        if self.role is Role.GATEWAY:
            return self._gateway_sends(msg, now)
        return self._agent_sends(msg, now)

    def _gateway_sends(self, msg: Message, now: float) -> bool:
        state = self.state
        if state is State.HELLO and self.standby and isinstance(msg, StandingBy):
            if msg.version != self.version:
                raise LocalProtocolError(f"standing_by must carry the negotiated v{self.version}")
            self.state = State.STANDBY  # no ping timer: a parked connection is not pinged
            return True
        if state is State.STANDBY and isinstance(msg, (Superseded, Bye)):
            self.state = State.CLOSED
            return True
        if state in (State.HELLO, State.STANDBY) and isinstance(msg, Welcome):
            if msg.version != self.version:
                raise LocalProtocolError(f"welcome must carry the negotiated v{self.version}")
            self.state = State.ESTABLISHED
            self.heartbeat = max(MIN_HEARTBEAT_S, msg.heartbeat_ms / 1000)
            self._next_ping = now + self.heartbeat
            return True
        if state is State.ESTABLISHED:
            if isinstance(msg, Ping):
                self._next_ping = now + self.heartbeat
                return True
            if isinstance(msg, Open):
                return True
            if isinstance(msg, (Superseded, Bye)):
                self.state = State.CLOSED
                return True
        if state is State.IDLE and isinstance(msg, StreamOpen):
            self.state = State.OPENING
            return True
        if state is State.OPENING and self.kind is Kind.CONNECT:
            if isinstance(msg, StreamReady):
                self.state = State.RAW
                return True
            if isinstance(msg, StreamRefused):
                self.state = State.CLOSED
                return True
        return False

    def _agent_sends(self, msg: Message, now: float) -> bool:
        state = self.state
        if state is State.START:
            if isinstance(msg, Hello) and self.kind in (None, Kind.CONTROL):
                self.kind, self.state = Kind.CONTROL, State.HELLO
                self._hello_version = msg.version
                self._heard = now
                return True
            if isinstance(msg, Standby) and self.kind in (None, Kind.CONTROL):
                if msg.version < STANDBY_VERSION:
                    raise LocalProtocolError(f"a standby needs v{STANDBY_VERSION} or newer")
                self.kind, self.state, self.standby = Kind.CONTROL, State.HELLO, True
                self._hello_version = msg.version
                self._heard = now
                return True
            if isinstance(msg, Data) and self.kind in (None, Kind.DATA):
                self.kind, self.state = Kind.DATA, State.IDLE
                return True
            if isinstance(msg, Connect) and self.kind in (None, Kind.CONNECT):
                self.kind, self.state = Kind.CONNECT, State.OPENING
                return True
            return False
        if state is State.ESTABLISHED and isinstance(msg, Probe):
            self._probed = now
            return True
        if state in (State.HELLO, State.STANDBY, State.ESTABLISHED) and isinstance(msg, Bye):
            self.state = State.CLOSED
            return True
        if state is State.OPENING and self.kind is Kind.DATA:
            if isinstance(msg, StreamReady):
                self.state = State.RAW
                return True
            if isinstance(msg, StreamRefused):
                self.state = State.CLOSED
                return True
        return False

    # ----------------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work (None: no timer)."""
        if self.state is not State.ESTABLISHED:
            return None
        if self.role is Role.GATEWAY:
            return self._next_ping
        return min(self._probe_due(), self._heard + self.dead_after)

    def _probe_due(self) -> float:
        gap = max(MIN_PROBE_GAP_S, 3 * self.heartbeat)
        return max(self._heard + 2 * self.heartbeat, self._probed + gap)

    def handle_timer(self, now: float) -> bytes:
        """Due heartbeat work: the bytes to write (a ping or a probe), or ``b""``.

        An early or spurious call does nothing, so a driver may keep one coarse timer and
        call this whenever it fires. The agent side queues :class:`PeerDead` after
        ``dead_after`` of silence; the driver sees it from :meth:`next_event`.
        """
        if self.state is not State.ESTABLISHED:
            return b""
        now += EPSILON
        if self.role is Role.GATEWAY:
            if now < self._next_ping:
                return b""
            self._next_ping = now - EPSILON + self.heartbeat
            return PING_LINE
        silent = now - self._heard
        if silent >= self.dead_after:
            self.state = State.CLOSED
            self._events.append(PeerDead(round(silent - EPSILON, 6)))
            return b""
        if now >= self._probe_due():
            return self.send(Probe(), now - EPSILON)
        return b""
