"""The tunnel protocol: one JSON object per line on the TLS connections to the tunnel port.

First line a client sends decides what the connection is:

* ``{"op": "hello", "services": [...], "reconnects": N}``: a device agent's control
  connection (device certificate). Answer ``welcome`` with the session id, heartbeat, pool
  size and routes. Then the gateway sends ``ping``, ``open`` (token) and ``superseded``.
* ``{"op": "data", "session": S, "token": T}``: a data connection of session S, either asked
  for by ``open`` (token T) or pre-opened for the pool (T empty). The gateway later writes
  ``{"op": "stream", "service": NAME}``; the agent connects to the service and answers
  ``{"ok": true}`` (or ``{"ok": false, "error": ...}``); from then on raw bytes.
* ``{"op": "connect", "device": D, "service": NAME}``: a user's `connect` stream (user
  certificate). Answer ``{"ok": true}`` or an error; then raw bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hagate.net.conn import Conn, ProtocolError

VERSION = 1
MAX_LINE = 64 * 1024
SERVICE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


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
            raise ProtocolError("service must be an object")
        name, kind, port, tport = d.get("name"), d.get("kind"), d.get("port"), d.get("target_port")
        if not isinstance(name, str) or not SERVICE_RE.match(name):
            raise ProtocolError(f"bad service name {name!r}")
        try:
            k = ServiceKind(kind)
        except ValueError:
            raise ProtocolError(f"bad service kind {kind!r}") from None
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise ProtocolError(f"bad service port {port!r}")
        if tport is not None and (not isinstance(tport, int) or not 1 <= tport <= 65535):
            raise ProtocolError(f"bad service target_port {tport!r}")
        return ServiceSpec(name, k, port, tport)


def encode(**msg: Any) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


PING = encode(op="ping")
PROBE = encode(op="probe")


def decode(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("not a JSON line") from None
    if not isinstance(msg, dict):
        raise ProtocolError("not a JSON object")
    return msg


async def read_message(conn: Conn, limit: int = MAX_LINE) -> dict[str, Any]:
    return decode(await conn.read_until(b"\n", limit))
