"""The console's view of the cluster: every node polled in a thread, a revision number that
moves when anything shown changes, and a condition the live-update streams wait on.

VRRP status sockets are read every ``interval`` (0.25 s: a failover reaches the page well
within a second); the gateways' summaries every other round (each costs the node's loop an
O(devices) pass; not more often while a failover's devices come back, when the new master's
loop is busiest with their reconnections: the timeline dates their return to this poll).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hagate.console.nodes import NodeClient, NodeError
from hagate.console.timeline import Timeline

_INSTANCE_FIELDS = (
    "name",
    "vrid",
    "interface",
    "version",
    "state",
    "base_priority",
    "effective_priority",
    "master",
    "vips",
    "scripts",
    "last_transition",
)


@dataclass
class NodeView:
    name: str
    vrrp: dict[str, Any] | None = None
    vrrp_error: str = ""
    gateway: dict[str, Any] | None = None
    gateway_error: str = ""
    polled: float = 0.0
    vrrp_ok_at: float | None = None  # the last poll it answered

    def as_json(self) -> dict[str, Any]:
        vrrp: dict[str, Any] = {
            "ok": self.vrrp is not None,
            "error": self.vrrp_error or None,
            # only while it is down: a time that moves every poll would be a change every poll
            "last_ok": (
                round(self.vrrp_ok_at, 1)
                if self.vrrp is None and self.vrrp_ok_at is not None
                else None
            ),
        }
        if self.vrrp is not None:
            vrrp["pid"] = self.vrrp.get("pid")
            vrrp["instances"] = [
                {k: inst.get(k) for k in _INSTANCE_FIELDS}
                for inst in self.vrrp.get("instances") or []
                if isinstance(inst, dict)
            ]
        gw: dict[str, Any] = {"ok": self.gateway is not None, "error": self.gateway_error or None}
        if self.gateway is not None:
            for key in ("known", "online", "streams"):
                gw[key] = self.gateway.get(key)
            health = self.gateway.get("health")
            if isinstance(health, dict):  # not loop_lag_ms: it would move every poll
                gw["health"] = {k: health.get(k) for k in ("ok", "agents", "policy")}
        return {"name": self.name, "vrrp": vrrp, "gateway": gw}


@dataclass
class Cluster:
    """Polls ``clients``; ``view()`` is the JSON of /api/cluster and of each live update."""

    clients: list[NodeClient]
    interval: float = 0.25
    timeline: Timeline = field(default_factory=Timeline)
    revision: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)
    _nodes: dict[str, NodeView] = field(default_factory=dict)
    _shown: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        for c in self.clients:
            self._nodes[c.target.name] = NodeView(c.target.name)
        self._pool = ThreadPoolExecutor(max(2, 2 * len(self.clients)), "console-poll")

    def client(self, node: str) -> NodeClient | None:
        return next((c for c in self.clients if c.target.name == node), None)

    def start(self) -> None:
        self.poll(gateways=True)
        self._thread = threading.Thread(target=self._run, name="console-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self.changed:
            self.changed.notify_all()

    def _run(self) -> None:
        rounds = 0
        while not self._stop.wait(self.interval):
            rounds += 1
            self.poll(gateways=rounds % 2 == 0)

    def poll(self, gateways: bool) -> None:
        """One round: every node at once (a dead node's timeout does not delay the others)."""
        vrrp = {c.target.name: self._pool.submit(_vrrp, c) for c in self.clients}
        gws = {
            c.target.name: self._pool.submit(_summary, c)
            for c in self.clients
            if gateways and c.target.admin is not None
        }
        now = time.time()
        for name, fut in vrrp.items():
            snap, error = fut.result()
            view = self._nodes[name]
            view.vrrp, view.vrrp_error, view.polled = snap, error, now
            if snap is not None:
                view.vrrp_ok_at = now
            if snap is not None or view.vrrp_error != "no run directory":
                self.timeline.observe(name, snap, now, error)
        for name, fut in gws.items():
            summary, error = fut.result()
            view = self._nodes[name]
            view.gateway, view.gateway_error = summary, error
        if gws:
            online = {name: _count((self._nodes[name].gateway or {}).get("online")) for name in gws}
            self.timeline.gateways(online, time.time())
        self._publish()

    def view(self) -> dict[str, Any]:
        events = sorted(self.timeline.events, key=lambda e: (e.at, e.seq), reverse=True)
        nodes = [v.as_json() for v in self._nodes.values()]
        return {
            "nodes": nodes,
            "masters": self.timeline.masters(),
            "timeline": [e.as_json() for e in events[:200]],
            "devices_rev": sum(
                int((v.gateway or {}).get("device_changes") or 0) for v in self._nodes.values()
            )
            + sum(1 for v in self._nodes.values() if v.gateway is not None),
            "access_rev": sum(
                int((v.gateway or {}).get("access_seen") or 0) for v in self._nodes.values()
            ),
        }

    def _publish(self) -> None:
        shown = json.dumps(self.view(), sort_keys=True, default=str)
        if shown != self._shown:
            with self.changed:
                self._shown = shown
                self.revision += 1
                self.changed.notify_all()

    def shown(self) -> tuple[int, str]:
        """(revision, the view's JSON) as last published."""
        with self.changed:
            return self.revision, self._shown


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _vrrp(client: NodeClient) -> tuple[dict[str, Any] | None, str]:
    if client.target.run_dir is None:
        return None, "no run directory"
    try:
        return client.vrrp(timeout=0.5), ""
    except NodeError as exc:
        return None, str(exc)


def _summary(client: NodeClient) -> tuple[dict[str, Any] | None, str]:
    try:
        data = client.get("/api/summary", timeout=1.0)
    except NodeError as exc:
        return None, str(exc)
    return (data, "") if isinstance(data, dict) else (None, "summary is not an object")
