"""The tunnel's wire format: one JSON object per line, each a typed, frozen message.

Every line on a tunnel connection decodes to exactly one of the message classes below or to a
:class:`WireError`; nothing downstream looks at raw JSON (no substring dispatch). Decoding
checks every field's type and range, so a driver can trust a message's fields.

Version 2 is a superset of version 1: it adds the ``retry_after_ms`` back-off hints to
``superseded`` and ``error``, a machine-readable ``code`` to ``error``, and an ``op`` on the
stream answers (which still carry v1's ``ok``). A v1 peer ignores the fields it does not know,
so a v2 gateway serves v1 agents and a v2 agent works with a v1 gateway. Version 3 adds warm
standby connections: ``hello.standby`` (the agent can hold them), ``welcome.standby`` (the
other nodes' endpoints), the ``standby`` first line and its answer ``standing_by``; a peer
that did not say 3 never sees them. docs/tunnel-wire.md is the reference a third party can
write an agent from.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from hagate.net.conn import ProtocolError

VERSION: Final = 3  # the newest version this code speaks
MIN_VERSION: Final = 1  # the oldest version it still accepts from a peer
MAX_LINE: Final = 64 * 1024  # bytes in one line, newline included
MAX_SERVICES: Final = 64
MAX_TEXT: Final = 1024  # error texts are cut to this many characters when encoded
MAX_ID: Final = 128  # session ids and tokens
MAX_RETRY_MS: Final = 24 * 3600 * 1000
STANDBY_VERSION: Final = 3  # the first version with standby connections
MAX_ENDPOINTS: Final = 16  # standby endpoints in one welcome
MAX_ADDRESS: Final = 64  # "host:port" or an IP address, as text
SERVICE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

# Status hints: what an HTTP front would answer if the line had been a user's request.
BAD_MESSAGE: Final = 400
TOO_LONG: Final = 413
BAD_VERSION: Final = 505


class WireError(ProtocolError):
    """A line that is not a valid message; ``reason`` is safe to log and to send back.

    A subclass of :class:`ProtocolError`, so code that catches the connection-level error
    keeps working; ``status_hint`` replaces guessing a status from the message text.
    """

    def __init__(self, reason: str, status_hint: int = BAD_MESSAGE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class ServiceKind(Enum):
    HTTP = "http"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service as the agent announces it (the target address stays on the device)."""

    name: str
    kind: ServiceKind
    port: int | None = None  # a TCP port the agent asks for (inside the gateway's range)
    target_port: int | None = None  # so that `connect dev1:22` finds the ssh service

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind.value}
        if self.port is not None:
            d["port"] = self.port
        if self.target_port is not None:
            d["target_port"] = self.target_port
        return d

    @staticmethod
    def from_json(d: Any) -> ServiceSpec:
        if not isinstance(d, dict):
            raise WireError("service must be an object")
        name, kind, port, tport = d.get("name"), d.get("kind"), d.get("port"), d.get("target_port")
        if not isinstance(name, str) or not SERVICE_RE.match(name):
            raise WireError(f"bad service name {_short(name)}")
        try:
            k = ServiceKind(kind)
        except (ValueError, TypeError):
            raise WireError(f"bad service kind {_short(kind)}") from None
        if port is not None and not _is_port(port):
            raise WireError(f"bad service port {_short(port)}")
        if tport is not None and not _is_port(tport):
            raise WireError(f"bad service target_port {_short(tport)}")
        return ServiceSpec(name, k, port, tport)


# ------------------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Hello:
    """Agent -> gateway, first line of a control connection (device certificate)."""

    services: tuple[ServiceSpec, ...]
    reconnects: int = 0  # sessions this agent process had before: 0 on a fresh start
    version: int = VERSION
    instance: str = ""  # v2: random per agent process, tells a reconnect from a twin
    standby: bool = False  # v3: the agent can hold standby connections to the other nodes


@dataclass(frozen=True, slots=True)
class Standby:
    """Agent -> gateway (v3), first line of a standby connection to a node's own address.

    Authenticated like a session (device certificate) but parked: not the device's session,
    not routable, no heartbeats. ``address`` is the address the agent's session dialled (the
    VIP): when this node holds it, the gateway promotes the connection with a ``welcome``.
    The other fields are the hello's, so that the promotion needs nothing more.
    """

    address: str
    services: tuple[ServiceSpec, ...]
    reconnects: int = 0
    version: int = VERSION
    instance: str = ""


@dataclass(frozen=True, slots=True)
class StandingBy:
    """Gateway -> agent (v3): the standby connection is parked; a ``welcome`` may follow."""

    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Welcome:
    """Gateway -> agent, the answer to ``hello``: the session is established."""

    session: str
    heartbeat_ms: int
    dead_after_ms: int
    pool: int = 1  # spare data connections to keep open while the device is in use
    pool_idle_s: float = -1.0  # < 0: keep ``pool`` spares open at all times
    routes: Mapping[str, str] = field(default_factory=dict)  # service -> host or "tcp:PORT"
    errors: Mapping[str, str] = field(default_factory=dict)  # service -> why it has no route
    version: int = VERSION  # the version the session speaks: min(agent's, gateway's)
    # v3, only to an agent whose hello said ``standby``: the other nodes' own endpoints
    # ("host:port") to hold a standby connection to
    standby: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ping:
    """Gateway -> agent every heartbeat; also the answer to a probe."""


@dataclass(frozen=True, slots=True)
class Probe:
    """Agent -> gateway after two silent heartbeat intervals: "are you still there?"."""


@dataclass(frozen=True, slots=True)
class Open:
    """Gateway -> agent: open a data connection now and present ``token`` on it."""

    token: str


@dataclass(frozen=True, slots=True)
class Data:
    """Agent -> gateway, first line of a data connection of ``session``.

    ``token`` answers an ``open``; empty means a spare for the session's pool.
    """

    session: str
    token: str = ""


@dataclass(frozen=True, slots=True)
class StreamOpen:
    """Gateway -> agent on a data connection: connect to ``service``; user bytes follow."""

    service: str


@dataclass(frozen=True, slots=True)
class StreamReady:
    """The stream is connected; raw bytes follow. Agent -> gateway on a data connection,
    gateway -> user on a connect connection."""


@dataclass(frozen=True, slots=True)
class StreamRefused:
    """The stream could not be connected (``error`` is for the user); the connection ends."""

    error: str
    code: str = ""  # e.g. offline, timeout, no_service, limit, device_error


@dataclass(frozen=True, slots=True)
class Connect:
    """User -> gateway, first line of a ``hagate connect`` stream (user certificate)."""

    device: str
    service: str


@dataclass(frozen=True, slots=True)
class Superseded:
    """Gateway -> agent: a newer session of this device took over; wait, then redial."""

    retry_after_ms: int = 0  # 0: no hint (v1), use the agent's own back-off
    # v3: the newer session is this agent's own (same hello instance, e.g. its standby was
    # promoted while it redialled): no twin, no back-off. Sent only when true.
    same_instance: bool = False


@dataclass(frozen=True, slots=True)
class Refused:
    """Gateway -> peer (``{"op": "error"}``): refused; the connection ends."""

    error: str
    code: str = ""  # revoked, bad_certificate, wrong_role, forbidden, version, protocol, twin...
    retry_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class Bye:
    """Either side on a control connection: a clean end of the session."""


Message = (
    Hello
    | Standby
    | StandingBy
    | Welcome
    | Ping
    | Probe
    | Open
    | Data
    | StreamOpen
    | StreamReady
    | StreamRefused
    | Connect
    | Superseded
    | Refused
    | Bye
)

PING_LINE: Final = b'{"op":"ping"}\n'  # the most common line by far: matched without JSON
_PING: Final = Ping()

# ------------------------------------------------------------------------------ encoding


def _dumps(d: dict[str, Any]) -> bytes:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def encode(msg: Message) -> bytes:
    """One line (newline included) for ``msg``; the inverse of :func:`decode`."""
    if isinstance(msg, Ping):
        return PING_LINE
    return _dumps(to_json(msg))


def to_json(msg: Message) -> dict[str, Any]:
    """The JSON object of ``msg`` (field order as documented)."""
    if isinstance(msg, Ping):
        return {"op": "ping"}
    if isinstance(msg, Probe):
        return {"op": "probe"}
    if isinstance(msg, Bye):
        return {"op": "bye"}
    if isinstance(msg, Hello):
        return {
            "op": "hello",
            "v": msg.version,
            "services": [s.to_json() for s in msg.services],
            "reconnects": msg.reconnects,
            **({"instance": msg.instance} if msg.instance else {}),
            **({"standby": True} if msg.standby else {}),
        }
    if isinstance(msg, Standby):
        return {
            "op": "standby",
            "v": msg.version,
            "address": msg.address,
            "services": [s.to_json() for s in msg.services],
            "reconnects": msg.reconnects,
            **({"instance": msg.instance} if msg.instance else {}),
        }
    if isinstance(msg, StandingBy):
        return {"op": "standing_by", "v": msg.version}
    if isinstance(msg, Welcome):
        w: dict[str, Any] = {
            "op": "welcome",
            "v": msg.version,
            "session": msg.session,
            "heartbeat_ms": msg.heartbeat_ms,
            "dead_after_ms": msg.dead_after_ms,
            "pool": msg.pool,
            "pool_idle_s": msg.pool_idle_s,
            "routes": dict(msg.routes),
            "errors": dict(msg.errors),
        }
        if msg.standby:
            w["standby"] = list(msg.standby)
        return w
    if isinstance(msg, Open):
        return {"op": "open", "token": msg.token}
    if isinstance(msg, Data):
        return {"op": "data", "session": msg.session, "token": msg.token}
    if isinstance(msg, StreamOpen):
        return {"op": "stream", "service": msg.service}
    if isinstance(msg, StreamReady):
        return {"op": "ready", "ok": True}
    if isinstance(msg, StreamRefused):
        d: dict[str, Any] = {"op": "refused", "ok": False, "error": msg.error[:MAX_TEXT]}
        if msg.code:
            d["code"] = msg.code
        return d
    if isinstance(msg, Connect):
        return {"op": "connect", "device": msg.device, "service": msg.service}
    if isinstance(msg, Superseded):
        if msg.same_instance:
            return {"op": "superseded", "retry_after_ms": msg.retry_after_ms, "same_instance": True}
        return {"op": "superseded", "retry_after_ms": msg.retry_after_ms}
    # Refused, the only one left
    return {
        "op": "error",
        "error": msg.error[:MAX_TEXT],
        "code": msg.code,
        "retry_after_ms": msg.retry_after_ms,
    }


# ------------------------------------------------------------------------------ decoding


def decode(line: bytes) -> Message:
    """The message in one line (trailing newline optional), or :class:`WireError`."""
    if line == PING_LINE:
        return _PING
    if len(line) > MAX_LINE:
        raise WireError(f"line longer than {MAX_LINE} bytes", TOO_LONG)
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WireError("not a JSON line") from None
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    return from_json(obj)


def from_json(d: dict[str, Any]) -> Message:
    op = d.get("op")
    if op is None and "ok" in d:  # a v1 stream answer: {"ok": true} / {"ok": false, ...}
        op = "ready" if d["ok"] is True else "refused"
    if not isinstance(op, str):
        raise WireError("message has no op")
    parse = _PARSERS.get(op)
    if parse is None:
        raise WireError(f"unknown op {_short(op)}")
    return parse(d)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_port(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= 65535


def _int(d: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int:
    value = d.get(key)
    value = default if value is None else value
    if value is None:
        raise WireError(f"{d.get('op')}: {key} is required")
    if not _is_int(value) or not lo <= value <= hi:
        raise WireError(f"{d.get('op')}: {key} must be an integer in {lo}..{hi}")
    return int(value)


def _text(d: dict[str, Any], key: str, default: str | None, limit: int) -> str:
    value = d.get(key)
    value = default if value is None else value
    if value is None:
        raise WireError(f"{d.get('op')}: {key} is required")
    if not isinstance(value, str) or len(value) > limit:
        raise WireError(f"{d.get('op')}: {key} must be a string of at most {limit} characters")
    return value


def _version(d: dict[str, Any]) -> int:
    return _int(d, "v", 1, 0, 1_000_000)  # range checked by the connection, with a clear error


def _names(d: dict[str, Any], key: str) -> dict[str, str]:
    value = d.get(key)
    value = {} if value is None else value
    if not isinstance(value, dict) or len(value) > MAX_SERVICES:
        raise WireError(f"{d.get('op')}: {key} must be an object of at most {MAX_SERVICES}")
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > MAX_TEXT or len(v) > MAX_TEXT:
            raise WireError(f"{d.get('op')}: {key} values must be strings")
    return dict(value)


def _services(d: dict[str, Any]) -> tuple[ServiceSpec, ...]:
    raw = d.get("services")
    if not isinstance(raw, list) or len(raw) > MAX_SERVICES:
        raise WireError(f"{d.get('op')} needs a list of at most {MAX_SERVICES} services")
    services = tuple(ServiceSpec.from_json(s) for s in raw)
    if len({s.name for s in services}) != len(services):
        raise WireError("service names must be unique")
    return services


def _hello(d: dict[str, Any]) -> Hello:
    standby = d.get("standby", False)
    if not isinstance(standby, bool):
        raise WireError("hello: standby must be true or false")
    return Hello(
        _services(d),
        _int(d, "reconnects", 0, 0, 2**31 - 1),
        _version(d),
        _text(d, "instance", "", MAX_ID),
        standby,
    )


def _standby(d: dict[str, Any]) -> Standby:
    address = _text(d, "address", None, MAX_ADDRESS)
    if not address:
        raise WireError("standby: address is required")
    return Standby(
        address,
        _services(d),
        _int(d, "reconnects", 0, 0, 2**31 - 1),
        _version(d),
        _text(d, "instance", "", MAX_ID),
    )


def _endpoints(d: dict[str, Any]) -> tuple[str, ...]:
    value = d.get("standby")
    value = [] if value is None else value
    if not isinstance(value, list) or len(value) > MAX_ENDPOINTS:
        raise WireError(f"welcome: standby must be a list of at most {MAX_ENDPOINTS} endpoints")
    for e in value:
        if not isinstance(e, str) or not e or len(e) > MAX_ADDRESS:
            raise WireError("welcome: standby endpoints must be host:port strings")
    return tuple(value)


def _welcome(d: dict[str, Any]) -> Welcome:
    idle = d.get("pool_idle_s", -1.0)
    if not isinstance(idle, (int, float)) or isinstance(idle, bool) or not math.isfinite(idle):
        raise WireError("welcome: pool_idle_s must be a number")
    return Welcome(
        session=_text(d, "session", None, MAX_ID),
        heartbeat_ms=_int(d, "heartbeat_ms", None, 1, 3_600_000),
        dead_after_ms=_int(d, "dead_after_ms", None, 1, 3_600_000),
        pool=_int(d, "pool", 1, 0, 1024),
        pool_idle_s=float(idle),
        routes=_names(d, "routes"),
        errors=_names(d, "errors"),
        version=_version(d),
        standby=_endpoints(d),
    )


def _refused(d: dict[str, Any]) -> StreamRefused:
    ok = d.get("ok", False)
    if ok is not False:
        raise WireError("refused: ok must be false")
    return StreamRefused(_text(d, "error", "refused", MAX_TEXT), _text(d, "code", "", MAX_ID))


def _ready(d: dict[str, Any]) -> StreamReady:
    if d.get("ok", True) is not True:
        raise WireError("ready: ok must be true")
    return StreamReady()


def _error(d: dict[str, Any]) -> Refused:
    return Refused(
        _text(d, "error", "refused", MAX_TEXT),
        _text(d, "code", "", MAX_ID),
        _int(d, "retry_after_ms", 0, 0, MAX_RETRY_MS),
    )


_PARSERS: Final[dict[str, Callable[[dict[str, Any]], Message]]] = {
    "hello": _hello,
    "standby": _standby,
    "standing_by": lambda d: StandingBy(_version(d)),
    "welcome": _welcome,
    "ping": lambda d: _PING,
    "probe": lambda d: Probe(),
    "bye": lambda d: Bye(),
    "open": lambda d: Open(_text(d, "token", None, MAX_ID)),
    "data": lambda d: Data(_text(d, "session", None, MAX_ID), _text(d, "token", "", MAX_ID)),
    "stream": lambda d: StreamOpen(_text(d, "service", None, MAX_ID)),
    "ready": _ready,
    "refused": _refused,
    "connect": lambda d: Connect(
        _text(d, "device", None, MAX_ID), _text(d, "service", None, MAX_ID)
    ),
    "superseded": lambda d: Superseded(
        _int(d, "retry_after_ms", 0, 0, MAX_RETRY_MS), d.get("same_instance") is True
    ),
    "error": _error,
}
