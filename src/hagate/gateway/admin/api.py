"""The console's JSON routes: what each ``/api/*`` path answers (docs/console.md).

In the listener's thread, after the gates (auth.py) have passed: the gateway's state comes
from views.py, the queries are paged by paging.py; every answer is a status and a JSON
object, and bad input is a 400 that names the parameter.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from hagate.gateway.admin import views
from hagate.gateway.admin.book import DeviceBook
from hagate.gateway.admin.paging import MAX_LIMIT, DeviceQuery, access_page
from hagate.gateway.admin.views import LOOP_TIMEOUT
from hagate.gateway.bans import MAX_BAN_S

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

_ACTIONS = frozenset({"kick", "unban"})
_NO_GATEWAY = "no gateway behind this admin listener"
_UNKNOWN = "unknown path: see docs/console.md"
_BUSY = f"the gateway's loop did not answer within {LOOP_TIMEOUT} s"
log = logging.getLogger("hagate.gateway.admin")  # the listener's one logger (docs name it)


class AdminApi:
    """``get`` and ``post`` answer one ``/api/*`` request each: (status, JSON object).

    ``gateway`` None (a bare listener, as in tests) answers 503; the device book lives here,
    as long as the listener.
    """

    def __init__(self, gateway: Gateway | None) -> None:
        self.gateway = gateway
        self.book = DeviceBook()
        self.refresh = views.SharedRefresh()

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        gw = self.gateway
        if gw is None or gw.loop is None:
            return 503, {"error": _NO_GATEWAY}
        node = gw.cfg.node
        try:
            if path == "/api/summary":
                records, now, bans = self.refresh.get(gw, self.book)
                return 200, {
                    "node": node,
                    "now": round(now, 3),
                    "known": len(records),
                    "online": sum(1 for r in records if r.online),
                    "streams": sum(r.streams for r in records),
                    "banned": len(bans),
                    "device_changes": self.book.changes,
                    "access_seen": self.book.access_seen,
                    "health": gw.health(),
                }
            if path == "/api/devices":
                dq = DeviceQuery.parse(query)
                records, now, bans = self.refresh.get(gw, self.book)
                page = dq.page(records, node, now)
                for row in page["devices"]:
                    row["banned"] = bans.get(row["name"])
                return 200, page
            if path == "/api/bans":
                _, now, bans = self.refresh.get(gw, self.book)
                rows = list(bans.values())
                return 200, {"node": node, "now": round(now, 3), "bans": rows[:MAX_LIMIT]}
            if path == "/api/access":
                entries = views.access(gw)
                return 200, {"node": node, "entries": access_page(entries, query)}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        except concurrent.futures.TimeoutError:
            return 503, {"error": _BUSY}
        return 404, {"error": _UNKNOWN}

    def post(
        self, path: str, body: dict[str, Any], query: dict[str, list[str]] | None = None
    ) -> tuple[int, dict[str, Any]]:
        gw = self.gateway
        if gw is None or gw.loop is None:
            return 503, {"error": _NO_GATEWAY}
        parts = path.split("/")
        if len(parts) != 5 or parts[:3] != ["", "api", "devices"] or parts[4] not in _ACTIONS:
            return 404, {"error": _UNKNOWN}
        device, action = unquote(parts[3]), parts[4]
        by = str(body.get("by") or "admin")[:120]
        try:
            ban_s = ban_seconds(body, query or {})
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if action == "unban":
            try:
                lifted = views.unban(gw, device)
            except concurrent.futures.TimeoutError:
                return 503, {"error": _BUSY}
            if lifted:
                log.warning("admin: device %s unbanned by %s", device, by)
            return 200, {"node": gw.cfg.node, "device": device, "unbanned": lifted}
        try:
            kicked, banned = views.kick(gw, self.book, device, ban_s, by)
        except concurrent.futures.TimeoutError:
            return 503, {"error": _BUSY}
        if banned is not None:
            log.warning("admin: device %s banned for %d s by %s", device, ban_s, by)
        if not kicked and banned is None:
            return 404, {"error": f"device {device} has no session on {gw.cfg.node}"}
        return 200, {"node": gw.cfg.node, "device": device, "kicked": kicked, "banned": banned}


def ban_seconds(body: dict[str, Any], query: dict[str, list[str]]) -> int | None:
    """The kick's optional ban, in whole seconds: ``"ban"`` in the JSON body or ``?ban=`` in
    the URL (not both, unless equal); 1..MAX_BAN_S, else ValueError."""
    given: list[object] = []
    if body.get("ban") is not None:
        given.append(body["ban"])
    if "ban" in query:
        given.append(query["ban"][0])
    if not given:
        return None
    values: set[int] = set()
    for raw in given:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S}")
        text = str(raw).strip()
        if not text.isdigit() or len(text) > 6:
            raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S}")
        values.add(int(text))
    if len(values) > 1:
        raise ValueError("ban given twice (body and URL) with two values")
    seconds = values.pop()
    if not 1 <= seconds <= MAX_BAN_S:
        raise ValueError(f"ban must be whole seconds, 1..{MAX_BAN_S} (24 h)")
    return seconds
