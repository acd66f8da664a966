"""The tunnel protocol, as the gateway code imported it before :mod:`hagate.tunnel` existed.

The wire format now lives in :mod:`hagate.tunnel.wire` (typed messages, versioned; see
docs/tunnel-wire.md). These names stay importable for code not yet moved onto typed
messages: ``encode(**fields)`` and ``decode(line) -> dict`` are the old dict-based helpers.
New code uses ``hagate.tunnel.wire.encode(msg)`` / ``decode(line) -> Message``.
"""

from __future__ import annotations

import json
from typing import Any

from hagate.net.conn import Conn
from hagate.tunnel.wire import (
    MAX_LINE,
    PING_LINE,
    SERVICE_RE,
    VERSION,
    Probe,
    ServiceKind,
    ServiceSpec,
    WireError,
)
from hagate.tunnel.wire import encode as encode_message

__all__ = [
    "MAX_LINE",
    "PING",
    "PROBE",
    "SERVICE_RE",
    "VERSION",
    "ServiceKind",
    "ServiceSpec",
    "WireError",
    "decode",
    "encode",
    "read_message",
]

PING = PING_LINE
PROBE = encode_message(Probe())


def encode(**msg: Any) -> bytes:
    """A line from keyword fields (the v1 helper; prefer ``hagate.tunnel.wire.encode``)."""
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """The JSON object of a line, unchecked (prefer ``hagate.tunnel.wire.decode``)."""
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        raise WireError("not a JSON line") from None
    if not isinstance(msg, dict):
        raise WireError("not a JSON object")
    return msg


async def read_message(conn: Conn, limit: int = MAX_LINE) -> dict[str, Any]:
    return decode(await conn.read_until(b"\n", limit))
