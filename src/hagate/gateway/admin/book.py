"""What this node remembers of each device, for the console: its live session, its routes,
its bytes, its last error, and devices gone offline (the gateway itself forgets a device the
moment its session ends).

``DeviceBook.refresh`` runs in the event loop (views.py calls it there): it reads the loop's
dicts, which no other thread may iterate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hagate.gateway.accesslog import AccessEntry
    from hagate.gateway.server import Gateway

MAX_KNOWN = 200_000  # devices remembered (offline ones are forgotten oldest first)
OK_RESULTS = frozenset({"ok", "upgraded", "allowed"})  # access results that are not errors


@dataclass(slots=True)
class DeviceRecord:
    """What this node knows of one device: its live session if any, and its history here."""

    name: str
    online: bool = False
    session: str = ""
    since: float = 0.0  # wall clock the current session was first seen (by this book)
    last_seen: float = 0.0  # wall clock, last time it was online
    services: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    streams: int = 0
    bytes_in: int = 0  # user -> device, streams ended on this node
    bytes_out: int = 0
    live_in: int = 0  # streams still running
    live_out: int = 0
    last_error: str = ""
    last_error_at: float = 0.0

    def as_json(self, node: str, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "online": self.online,
            "node": node,
            "session": self.session if self.online else None,
            "since": round(self.since, 3) if self.online else None,
            "age_s": round(max(0.0, now - self.since), 1) if self.online else None,
            "last_seen": round(self.last_seen, 3),
            "services": self.services,
            "routes": self.routes,
            "streams": self.streams,
            "bytes_in": self.bytes_in + self.live_in,
            "bytes_out": self.bytes_out + self.live_out,
            "last_error": self.last_error or None,
            "last_error_at": round(self.last_error_at, 3) if self.last_error else None,
        }


class DeviceBook:
    """Devices seen by this gateway process; ``refresh`` runs in the event loop.

    A session's age is counted from when the book first saw it (the gateway does not stamp
    sessions): the console asks every second, so ages are right to about a second.
    """

    def __init__(self) -> None:
        self.records: dict[str, DeviceRecord] = {}
        self.changes = 0  # bumped when a device comes or goes: the console's cue to re-read
        self._last_entry: AccessEntry | None = None
        self.access_seen = 0

    def refresh(self, gw: Gateway, now: float) -> list[DeviceRecord]:
        records = self.records
        for name, session in gw.sessions.items():
            rec = records.get(name)
            if rec is None:
                rec = records[name] = DeviceRecord(name)
            if not rec.online or rec.session != session.sid:
                rec.online, rec.session, rec.since = True, session.sid, now
                rec.services = [s.to_json() for s in session.services.values()]
                rec.routes = routes_of(gw, session)
                self.changes += 1
            rec.last_seen = now
            rec.streams = rec.live_in = rec.live_out = 0
        for rec in records.values():
            if rec.online and rec.name not in gw.sessions:
                rec.online = False
                rec.streams = rec.live_in = rec.live_out = 0
                self.changes += 1
        for lease in gw.streams:
            rec = records.get(lease.device)
            if rec is not None:
                rec.streams += 1
                rec.live_in += lease.bytes[0]
                rec.live_out += lease.bytes[1]
        for entry in self._new_entries(gw.access.recent):
            rec = records.get(entry.device)
            if rec is None:
                continue  # a refusal for a device never seen here: not a device we know
            rec.bytes_in += entry.bytes_in
            rec.bytes_out += entry.bytes_out
            if entry.result not in OK_RESULTS:
                status = f" ({entry.status})" if entry.status is not None else ""
                rec.last_error, rec.last_error_at = f"{entry.result}{status}", entry.time
        if len(records) > MAX_KNOWN:
            offline = sorted((r for r in records.values() if not r.online), key=_seen)
            for rec in offline[: len(records) - MAX_KNOWN]:
                del records[rec.name]
        return list(records.values())

    def _new_entries(self, recent: list[AccessEntry]) -> list[AccessEntry]:
        """Entries appended since the last call (the list is trimmed from the front)."""
        start = 0
        last = self._last_entry
        if last is not None:
            for i in range(len(recent) - 1, -1, -1):
                if recent[i] is last:
                    start = i + 1
                    break
        fresh = recent[start:]
        if fresh:
            self._last_entry = fresh[-1]
            self.access_seen += len(fresh)
        return fresh

    def note_error(self, device: str, error: str, now: float) -> None:
        rec = self.records.get(device)
        if rec is not None:
            rec.last_error, rec.last_error_at = error, now


def _seen(rec: DeviceRecord) -> float:
    return rec.last_seen


def routes_of(gw: Gateway, session: Any) -> dict[str, str]:
    """How users reach each service (as ``Gateway.attach`` tells the agent)."""
    from hagate.gateway import http
    from hagate.tunnel.wire import ServiceKind

    routes: dict[str, str] = {}
    default_http = session.service(None)
    for svc in session.services.values():
        if svc.kind is ServiceKind.HTTP:
            host = f"{session.device}.{gw.cfg.domain}"
            if svc is not default_http:
                host = f"{svc.name}{http.SERVICE_SEP}{host}"
            routes[svc.name] = host
            continue
        port = gw.tcp.port_of(session.device, svc.name)
        routes[svc.name] = f"tcp:{port}" if port is not None and port in gw.tcp.socks else "connect"
    return routes
