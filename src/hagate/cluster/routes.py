"""The registry's decisions, pure: which node holds a device's newest session, and whether a
local session has been superseded by one on another node.

etcd keys (``ROOT`` = ``/hagate/v1/``)::

    ROOT nodes/<node>            -> {"peer": "host:port"}            (under the node's lease)
    ROOT devices/<device>/<node> -> {"sid": ..., "services": [...]}  (under the node's lease)

One key per (device, node) rather than one per device: a node only ever writes or deletes its
own keys, so no node can erase another's record, and a node's crash removes exactly its keys
(their lease expires). The newest session is the key with the highest ``mod_revision``: etcd's
revision is one total order for the whole cluster, where wall clocks of nodes are not.

No sockets, no clock: :class:`RouteTable` is fed a snapshot and then watch events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from hagate.tunnel.wire import ServiceKind, ServiceSpec, WireError

ROOT = "/hagate/v1/"
NODES = ROOT + "nodes/"
DEVICES = ROOT + "devices/"


def node_key(node: str) -> bytes:
    return (NODES + node).encode()


def device_key(device: str, node: str) -> bytes:
    return (DEVICES + f"{device}/{node}").encode()


@dataclass(frozen=True, slots=True)
class Record:
    """One node's claim that it holds ``device``'s session ``sid`` (written at ``revision``)."""

    device: str
    node: str
    sid: str
    revision: int
    services: tuple[ServiceSpec, ...] = ()

    def service(self, name: str | None, kind: ServiceKind | None = None) -> ServiceSpec | None:
        """Same resolution as :meth:`hagate.gateway.session.Session.service`."""
        if name is None:
            http = [s for s in self.services if s.kind is ServiceKind.HTTP]
            named = [s for s in http if s.name == "http"]
            candidates = named or http
            return candidates[0] if candidates else None
        svc = next((s for s in self.services if s.name == name), None)
        if svc is None and name.isdigit():
            svc = next((s for s in self.services if s.target_port == int(name)), None)
        if svc is not None and kind is not None and svc.kind is not kind:
            return None
        return svc


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    peer: str  # host:port of its peer listener
    revision: int
    addresses: tuple[str, ...] = ()  # its own IPv4 addresses now (the VIPs it holds among them)


def session_value(sid: str, services: tuple[ServiceSpec, ...]) -> bytes:
    return json.dumps(
        {"sid": sid, "services": [s.to_json() for s in services]}, separators=(",", ":")
    ).encode()


def node_value(peer: str, addresses: tuple[str, ...] = ()) -> bytes:
    return json.dumps({"peer": peer, "addrs": list(addresses)}, separators=(",", ":")).encode()


class Verdict(Enum):
    KEEP = "keep"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Change:
    """What one event changed: the device's winner before and after (None: no record)."""

    device: str
    before: Record | None
    after: Record | None


@dataclass
class RouteTable:
    """device -> node -> Record, and node -> NodeInfo, as of ``revision``."""

    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    revision: int = 0
    bad_values: int = 0  # keys under ROOT whose value could not be read (counted, ignored)
    # node -> devices whose winner it is, kept by every change (read by other threads: copy)
    per_node: dict[str, int] = field(default_factory=dict)

    def reset(self, kvs: list[tuple[bytes, bytes, int]], revision: int) -> list[Change]:
        """Replace everything with a snapshot; the changes of every device's winner."""
        before = {d: self.winner(d) for d in self.records}
        self.records.clear()
        self.nodes.clear()
        self.revision = revision
        for key, value, mod in kvs:
            self._put(key, value, mod)
        changes = []
        counts: dict[str, int] = {}
        for device in set(before) | set(self.records):
            after = self.winner(device)
            if after is not None:
                counts[after.node] = counts.get(after.node, 0) + 1
            if before.get(device) != after:
                changes.append(Change(device, before.get(device), after))
        self.per_node = counts
        return changes

    def put(self, key: bytes, value: bytes, revision: int) -> Change | None:
        self.revision = max(self.revision, revision)
        device = _device_of(key)
        before = self.winner(device) if device else None
        self._put(key, value, revision)
        if device is None:
            return None
        after = self.winner(device)
        return self._count(Change(device, before, after)) if before != after else None

    def delete(self, key: bytes, revision: int) -> Change | None:
        self.revision = max(self.revision, revision)
        text = key.decode(errors="replace")
        if text.startswith(NODES):
            self.nodes.pop(text[len(NODES) :], None)
            return None
        parts = _split_device(text)
        if parts is None:
            return None
        device, node = parts
        before = self.winner(device)
        per = self.records.get(device)
        if per is not None:
            per.pop(node, None)
            if not per:
                del self.records[device]
        after = self.winner(device)
        return self._count(Change(device, before, after)) if before != after else None

    def _count(self, change: Change) -> Change:
        counts = dict(self.per_node)  # a new dict: readers in other threads see old or new
        for rec, step in ((change.before, -1), (change.after, 1)):
            if rec is not None:
                n = counts.get(rec.node, 0) + step
                if n > 0:
                    counts[rec.node] = n
                else:
                    counts.pop(rec.node, None)
        self.per_node = counts
        return change

    def _put(self, key: bytes, value: bytes, revision: int) -> None:
        text = key.decode(errors="replace")
        try:
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if text.startswith(NODES):
                name = text[len(NODES) :]
                peer = data.get("peer")
                addrs = data.get("addrs", [])
                if not isinstance(peer, str) or not name or not isinstance(addrs, list):
                    raise ValueError("no peer")
                found = tuple(a for a in addrs if isinstance(a, str))
                self.nodes[name] = NodeInfo(name, peer, revision, found)
                return
            parts = _split_device(text)
            if parts is None:
                return
            device, node = parts
            sid = data.get("sid")
            if not isinstance(sid, str):
                raise ValueError("no sid")
            services = tuple(ServiceSpec.from_json(s) for s in data.get("services", []))
        except (ValueError, WireError, TypeError, RecursionError):
            self.bad_values += 1
            return
        self.records.setdefault(device, {})[node] = Record(device, node, sid, revision, services)

    # ------------------------------------------------------------------ decisions

    def winner(self, device: str) -> Record | None:
        """The device's newest session: the highest revision (ties cannot happen in etcd)."""
        per = self.records.get(device)
        if not per:
            return None
        return max(per.values(), key=lambda r: (r.revision, r.node))

    def verdict(self, device: str, node: str, sid: str) -> Verdict:
        """Whether ``node``'s local session ``sid`` must give way to a newer one elsewhere.

        Only a record of ``sid`` already written lets another node's newer record win: a
        session whose own put is still on its way will be newer than anything seen so far.
        """
        mine = self.records.get(device, {}).get(node)
        best = self.winner(device)
        if mine is None or mine.sid != sid or best is None or best.node == node:
            return Verdict.KEEP
        return Verdict.SUPERSEDED if best.revision > mine.revision else Verdict.KEEP

    def route(self, device: str, local: str) -> Record | None:
        """Where a user at ``local`` is sent for ``device`` (None: nowhere known)."""
        best = self.winner(device)
        if best is None or best.node == local:
            return None
        return best

    def recount(self) -> None:
        counts: dict[str, int] = {}
        for device in list(self.records):
            best = self.winner(device)
            if best is not None:
                counts[best.node] = counts.get(best.node, 0) + 1
        self.per_node = counts

    def devices_per_node(self) -> dict[str, int]:
        """node -> devices it holds (safe to call from another thread)."""
        return dict(self.per_node)

    def own_keys(self, node: str) -> dict[str, Record]:
        """device -> this node's record (what the node itself has published)."""
        return {d: per[node] for d, per in self.records.items() if node in per}


@dataclass(frozen=True, slots=True)
class Publish:
    device: str
    sid: str
    services: tuple[ServiceSpec, ...]


@dataclass(frozen=True, slots=True)
class Unpublish:
    device: str


def reconcile(local: dict[str, Publish], published: dict[str, Record]) -> list[Publish | Unpublish]:
    """What a node writes after etcd comes back: its keys made to match its live sessions.

    A key already holding the same session is left alone (it keeps its revision, so it does not
    jump ahead of a newer session elsewhere); missing or different ones are written again.
    """
    ops: list[Publish | Unpublish] = []
    for device, pub in sorted(local.items()):
        rec = published.get(device)
        if rec is None or rec.sid != pub.sid:
            ops.append(pub)
    for device in sorted(set(published) - set(local)):
        ops.append(Unpublish(device))
    return ops


def _split_device(text: str) -> tuple[str, str] | None:
    if not text.startswith(DEVICES):
        return None
    device, sep, node = text[len(DEVICES) :].partition("/")
    if not sep or not device or not node or "/" in node:
        return None
    return device, node


def _device_of(key: bytes) -> str | None:
    parts = _split_device(key.decode(errors="replace"))
    return parts[0] if parts else None
