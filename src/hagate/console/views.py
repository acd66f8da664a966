"""The console's JSON: what ``/api/*`` answers (docs/console.md), across every node.

Devices are paged by name (keyset: ``after`` is the last name of the previous page), filtered
on each node (the node does the work for its own 10,000 devices) and merged here: a device
online on one node and remembered offline on another is shown online, where it is.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hagate.console.nodes import NodeClient, NodeError
from hagate.console.poller import Cluster
from hagate.gateway.bans import MAX_BAN_S
from hagate.policy import Policy, PolicyError, RouteKind, empty_policy, load_policy

MAX_PAGE = 500
OFFLINE_SCAN_S = 1.0  # a status=offline page looks at most this long for offline devices


class Views:
    def __init__(self, cluster: Cluster, policy_path: Path | None, pki: Path | None = None) -> None:
        self.cluster = cluster
        self.policy_path = policy_path
        self.pki = pki
        self.actions: deque[dict[str, Any]] = deque(maxlen=200)
        self._policy: Policy = empty_policy()
        self._policy_error = "" if policy_path else "no --policy given: nobody can log in"
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(4, "console-views")
        self.policy()

    def policy(self) -> Policy:
        """The policy file, re-read when it changes (a bad edit keeps the last good one)."""
        path = self.policy_path
        if path is None:
            return self._policy
        try:
            st = path.stat()
            stamp = (st.st_mtime, st.st_size)
        except OSError as exc:
            self._policy_error = f"{path}: {exc.strerror}"
            return self._policy
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._policy = load_policy(path)
                    self._policy_error = ""
                except PolicyError as exc:
                    self._policy_error = str(exc)
                self._stamp = stamp
            return self._policy

    def note_action(self, entry: dict[str, Any]) -> None:
        self.actions.append(entry)

    # -- reading -------------------------------------------------------------------------

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        try:
            if path == "/api/cluster":
                return 200, self.cluster.view()
            if path == "/api/devices":
                return 200, self.devices(query)
            if path == "/api/access":
                return 200, self.access(query)
            if path == "/api/can":
                return self.can(query)
            if path == "/api/actions":
                return 200, {"actions": list(self.actions)}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": "unknown path: see docs/console.md"}

    def _fan_out(self, path: str, params: dict[str, Any]) -> tuple[list[Any], dict[str, str]]:
        """GET ``path`` on every node with an admin address: answers and errors by node."""
        clients = [c for c in self.cluster.clients if c.target.admin is not None]
        futures = {c.target.name: self._pool.submit(c.get, path, params, 3.0) for c in clients}
        answers, errors = [], {}
        for name, fut in futures.items():
            try:
                answers.append(fut.result())
            except NodeError as exc:
                errors[name] = str(exc)
        return answers, errors

    def devices(self, query: dict[str, list[str]]) -> dict[str, Any]:
        q = _one(query, "q")
        status = _one(query, "status") or "all"
        after = _one(query, "after")
        limit = _int(query, "limit", 50, MAX_PAGE)
        if status not in ("all", "online", "offline"):
            raise ValueError("status must be all, online or offline")
        if status != "offline":
            rows, more, by_node, failed = self._merged(q, status, after, limit)
            page = rows[:limit]
            return {
                "devices": page,
                "next": page[-1]["name"] if more and page else None,
                "nodes": by_node,
                "errors": failed,
            }
        # Offline means offline on every node that knows it, so the nodes are asked for all
        # their devices and the merged rows filtered here: a window of names at a time (the
        # whole window is settled: each node gave every name of it), until the page is full,
        # the names run out or OFFLINE_SCAN_S is spent; then ``next`` is the last name looked
        # at, so that the page may be short (even empty) and still say where to go on.
        found: list[dict[str, Any]] = []
        cursor, more = after, True
        errors: dict[str, str] = {}
        counts: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + OFFLINE_SCAN_S
        while more and len(found) < limit and time.monotonic() < deadline:
            rows, more, counts, round_errors = self._merged(q, "all", cursor, MAX_PAGE)
            errors |= round_errors
            window = rows[:MAX_PAGE]
            more = more or len(rows) > MAX_PAGE
            if not window:
                break
            found += [d for d in window if not d.get("online")]
            cursor = str(window[-1]["name"])
        page = found[:limit]
        if len(found) > limit:
            nxt: str | None = str(page[-1]["name"])
        else:
            nxt = cursor if more else None
        return {"devices": page, "next": nxt, "nodes": counts, "errors": errors}

    def _merged(
        self, q: str, status: str, after: str, limit: int
    ) -> tuple[list[dict[str, Any]], bool, dict[str, dict[str, Any]], dict[str, str]]:
        """One page from every node, merged by name (sorted): the rows, whether any node has
        more, each node's counts, the nodes that did not answer."""
        params = {"q": q, "status": status, "after": after, "limit": limit}
        answers, errors = self._fan_out("/api/devices", params)
        merged: dict[str, dict[str, Any]] = {}
        more = False
        counts: dict[str, dict[str, Any]] = {}
        for answer in answers:
            if not isinstance(answer, dict):
                continue
            counts[str(answer.get("node"))] = {
                k: answer.get(k) for k in ("known", "online", "matched")
            }
            more = more or answer.get("next") is not None
            for dev in answer.get("devices") or []:
                name = str(dev.get("name"))
                have = merged.get(name)
                if have is None or _better(dev, have):
                    if have is not None:
                        dev = dev | {"also": sorted({*have.get("also", []), have["node"]})}
                    merged[name] = dev
                elif have is not None:
                    have["also"] = sorted({*have.get("also", []), dev["node"]})
        rows = sorted(merged.values(), key=lambda d: str(d["name"]))
        return rows, more or len(rows) > limit, counts, errors

    def access(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = _int(query, "limit", 100, MAX_PAGE)
        result = _one(query, "result") or "all"
        if result not in ("all", "allowed", "denied"):
            raise ValueError("result must be all, allowed or denied")
        params = {
            "device": _one(query, "device"),
            "identity": _one(query, "identity"),
            "result": result,
            "limit": limit,
        }
        answers, errors = self._fan_out("/api/access", params)
        entries = [e for a in answers if isinstance(a, dict) for e in a.get("entries") or []]
        entries.sort(key=lambda e: float(e.get("time") or 0))
        return {"entries": entries[-limit:], "errors": errors}

    def can(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """``who``/``device``/``service``/``route``/``from``: the policy's answer, by which rule."""
        who, device = _one(query, "who"), _one(query, "device")
        service = _one(query, "service") or "http"
        route_text = _one(query, "route") or "https"
        source = _one(query, "from") or "any"
        if not who or not device:
            raise ValueError("give who (e.g. password:bob) and device")
        try:
            route = RouteKind(route_text)
        except ValueError:
            raise ValueError("route must be http, https, tcp or connect") from None
        policy = self.policy()
        try:
            decision = policy.explain(who, device, service, route, source)
        except PolicyError as exc:
            raise ValueError(str(exc)) from None
        return 200, {
            "who": who,
            "device": device,
            "service": service,
            "route": route.value,
            "from": source,
            "allowed": decision.allowed,
            "status": decision.status,
            "rule": decision.rule,
            "reason": decision.reason,
            "policy": policy.source,
            "policy_error": self._policy_error or None,
        }

    # -- acting --------------------------------------------------------------------------

    def act(self, path: str, body: dict[str, Any], user: str) -> tuple[int, dict[str, Any], str]:
        """(status, answer, the action's name for the audit log)."""
        if path == "/api/actions/kick":
            return (*self.kick(body, user), "kick" if body.get("ban") is None else "kick-ban")
        if path == "/api/actions/unban":
            return (*self.unban(body, user), "unban")
        if path == "/api/actions/revoke-token":
            return (*self.revoke(body), "revoke-token")
        return 404, {"error": "unknown action: see docs/console.md"}, ""

    def _admin_clients(self, node: object) -> list[NodeClient]:
        return [
            c
            for c in self.cluster.clients
            if c.target.admin is not None and (node is None or c.target.name == node)
        ]

    def kick(self, body: dict[str, Any], user: str) -> tuple[int, dict[str, Any]]:
        """Close the device's session; with ``ban`` (seconds, 1..24 h) also refuse its agent
        that long on *every* node (a ban is node-local, and after a failover the device dials
        the other node): ``node`` then only says where the session is."""
        from urllib.parse import quote

        device = body.get("device")
        if not isinstance(device, str) or not device or len(device) > 253:
            return 400, {"error": "give the device's name"}
        ban = body.get("ban")
        if ban is not None and (
            isinstance(ban, bool) or not isinstance(ban, int) or not 1 <= ban <= MAX_BAN_S
        ):
            return 400, {"error": f"ban must be whole seconds, 1..{MAX_BAN_S} (24 h)"}
        node = body.get("node")
        clients = self._admin_clients(None if ban is not None else node)
        if not clients or (node is not None and not self._admin_clients(node)):
            return 404, {"error": f"no node named {node!r} with an admin address"}
        kicked, banned, errors, refused = [], [], {}, []
        payload: dict[str, Any] = {"by": user} | ({"ban": ban} if ban is not None else {})
        for client in clients:
            try:
                answer = client.post(f"/api/devices/{quote(device, safe='')}/kick", payload)
            except NodeError as exc:
                errors[client.target.name] = str(exc)
                if exc.code in (401, 403):
                    refused.append(str(exc))
                continue
            if answer.get("kicked", True):
                kicked.append(client.target.name)
            if answer.get("banned"):
                banned.append(client.target.name)
        if not kicked and not banned and refused:  # e.g. no --admin-token-file: say so
            return 502, {"error": f"the gateway refused the kick: {refused[0]}", "errors": errors}
        if not kicked and not banned:
            return 404, {"error": f"device {device} has no session to kick", "errors": errors}
        answer = {"device": device, "kicked_on": kicked}
        if ban is not None:
            answer |= {"banned_on": banned, "ban_s": ban}
            if errors:
                answer["errors"] = errors  # a node that did not take the ban: say which
        return 200, answer

    def unban(self, body: dict[str, Any], user: str) -> tuple[int, dict[str, Any]]:
        """Lift the device's ban on every node."""
        from urllib.parse import quote

        device = body.get("device")
        if not isinstance(device, str) or not device or len(device) > 253:
            return 400, {"error": "give the device's name"}
        lifted, errors = [], {}
        for client in self._admin_clients(None):
            try:
                answer = client.post(f"/api/devices/{quote(device, safe='')}/unban", {"by": user})
            except NodeError as exc:
                errors[client.target.name] = str(exc)
                continue
            if answer.get("unbanned"):
                lifted.append(client.target.name)
        if errors and not lifted:
            return 502, {"error": "no node lifted the ban", "errors": errors}
        done: dict[str, Any] = {"device": device, "unbanned_on": lifted}
        return 200, done | ({"errors": errors} if errors else {})

    def revoke(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        jti = body.get("jti")
        if not isinstance(jti, str) or not jti:
            return 400, {"error": "give the token's id (jti)"}
        if self.pki is None:
            return 409, {"error": "the console was started without --pki: it cannot revoke"}
        from hagate.pki.ca import PKIError
        from hagate.policy import tokenfiles

        try:
            added = tokenfiles.revoke(self.pki, jti, None, time.time())
        except PKIError as exc:
            return 400, {"error": str(exc)}
        return 200, {"jti": jti, "revoked": [e.jti for e in added], "already": not added}


def _better(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Online beats offline; between two online sessions the newer one is the device's."""
    if bool(new.get("online")) != bool(old.get("online")):
        return bool(new.get("online"))
    if new.get("online"):
        return float(new.get("since") or 0) > float(old.get("since") or 0)
    return float(new.get("last_seen") or 0) > float(old.get("last_seen") or 0)


def _one(query: dict[str, list[str]], key: str) -> str:
    value = query.get(key, [""])[0]
    if len(value) > 300:
        raise ValueError(f"{key} is too long")
    return value


def _int(query: dict[str, list[str]], key: str, default: int, top: int) -> int:
    text = _one(query, key)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{key} must be a number") from None
    if not 1 <= value <= top:
        raise ValueError(f"{key} must be 1..{top}")
    return value
