"""The console's queries (``/api/devices``, ``/api/access``): parsed, filtered and paged.

Pure and in the listener's thread, on copies the loop handed over (views.py), so that a
search over 200,000 devices never holds the event loop; bad parameters are a ValueError the
routes answer with a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hagate.gateway.admin.book import OK_RESULTS, DeviceRecord

if TYPE_CHECKING:
    from hagate.gateway.accesslog import AccessEntry

MAX_LIMIT = 500  # devices or access entries in one answer
MAX_QUERY = 100  # characters of a search string


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """``/api/devices``: a name substring, online/offline/all, keyset paging by name."""

    q: str = ""
    status: str = "all"
    after: str = ""
    limit: int = 50

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> DeviceQuery:
        def one(key: str, default: str) -> str:
            return query.get(key, [default])[0]

        status = one("status", "all")
        if status not in ("all", "online", "offline"):
            raise ValueError("status must be all, online or offline")
        try:
            limit = int(one("limit", "50"))
        except ValueError:
            raise ValueError("limit must be a number") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        q = one("q", "")
        if len(q) > MAX_QUERY:
            raise ValueError(f"q is longer than {MAX_QUERY} characters")
        return cls(q.lower(), status, one("after", "")[: MAX_QUERY * 3], limit)

    def page(self, records: list[DeviceRecord], node: str, now: float) -> dict[str, Any]:
        want_online = {"all": None, "online": True, "offline": False}[self.status]
        q = self.q.lower()
        matched = [
            r
            for r in records
            if (want_online is None or r.online is want_online) and q in r.name.lower()
        ]
        matched.sort(key=_name)
        rows = [r for r in matched if r.name > self.after] if self.after else matched
        page = rows[: self.limit]
        more = len(rows) > self.limit
        return {
            "node": node,
            "now": round(now, 3),
            "known": len(records),
            "online": sum(1 for r in records if r.online),
            "matched": len(matched),
            "devices": [r.as_json(node, now) for r in page],
            "next": page[-1].name if more and page else None,
        }


def _name(rec: DeviceRecord) -> str:
    return rec.name


def access_page(
    entries: list[AccessEntry], query: dict[str, list[str]], limit_default: int = 100
) -> list[dict[str, Any]]:
    """The newest entries (oldest first) matching ``device``/``identity``/``result``."""
    try:
        limit = int(query.get("limit", [str(limit_default)])[0])
    except ValueError:
        raise ValueError("limit must be a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT}")
    device = query.get("device", [""])[0]
    identity = query.get("identity", [""])[0].lower()
    result = query.get("result", ["all"])[0]
    if result not in ("all", "allowed", "denied"):
        raise ValueError("result must be all, allowed or denied")
    out: list[dict[str, Any]] = []
    for entry in reversed(entries):
        if device and entry.device != device:
            continue
        if identity and identity not in entry.identity.lower():
            continue
        allowed = entry.result in OK_RESULTS
        if (result == "allowed" and not allowed) or (result == "denied" and allowed):
            continue
        out.append(json.loads(entry.json()))
        if len(out) >= limit:
            break
    out.reverse()
    return out
