"""What a gateway with ``[cluster]`` adds: the registry, the peer channel, and the few hooks
:class:`~hagate.gateway.server.Gateway` calls (attached, detached, lookup, open_remote).

The gateway stays the owner of its sessions: the registry only learns about them, and when it
finds a local session superseded by a newer one elsewhere, this module ends that session the
same way a newer local session would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from hagate.cluster.addresses import local_addresses
from hagate.cluster.config import ClusterConfig
from hagate.cluster.etcd import Etcd
from hagate.cluster.peer import FROM_PEER, PeerClient, PeerServer, server_context
from hagate.cluster.registry import Registry, Superseded
from hagate.cluster.routes import Change, Record
from hagate.gateway.protocol import ServiceKind, encode
from hagate.gateway.session import Session, StreamError
from hagate.net.conn import Conn
from hagate.net.tls import client_context

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.cluster")

ADDRESS_POLL_S = 0.5


class ClusterNode:
    def __init__(self, gw: Gateway, cfg: ClusterConfig) -> None:
        self.gw = gw
        self.cfg = cfg
        self.node = gw.cfg.node
        for warning in cfg.warnings:
            log.warning("%s", warning)
        self.registry = Registry(
            Etcd(list(cfg.etcd), cfg.etcd_timeout, cfg.etcd_security),
            self.node,
            cfg.advertise,
            cfg.lease_ttl,
            on_superseded=self._superseded,
            on_change=self._changed,
        )
        try:
            sctx = server_context(cfg.cert, cfg.key, gw.cfg.ca)
            cctx = client_context(cfg.cert, cfg.key, gw.cfg.ca)
        except ValueError as exc:
            raise ValueError(f"[cluster] node certificate: {exc}") from None
        self.server = PeerServer(gw, sctx)
        self.client = PeerClient(
            self.node, cctx, gw.backend, self._peer_error, revoked=lambda: gw.revoked
        )
        self._last_peer_error = 0.0
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        host, port = self.cfg.peer
        self.gw._listen("peer", host, port, self.server.on_connection)
        self.registry.set_addresses(local_addresses())
        self.registry.start()
        self._watch = asyncio.create_task(self._watch_addresses())

    async def _watch_addresses(self) -> None:
        """Which VIPs this node holds, published within ADDRESS_POLL_S of a change."""
        while True:
            await asyncio.sleep(ADDRESS_POLL_S)
            self.registry.set_addresses(local_addresses())

    async def stop(self) -> None:
        """A graceful stop: the lease is revoked, every record of this node goes at once."""
        if self._watch is not None:
            self._watch.cancel()
        self.server.close_all()
        self.client.close()
        await self.registry.stop(graceful=True)

    # ------------------------------------------------------------ gateway hooks

    def attached(self, session: Session) -> None:
        self.server.cut_device(session.device)  # streams of an older local session
        self.registry.publish(session.device, session.sid, tuple(session.services.values()))

    def detached(self, session: Session) -> None:
        self.server.cut_device(session.device)
        self.registry.unpublish(session.device, session.sid)

    def lookup(self, device: str) -> Record | None:
        """Where ``device`` is if not here (None when a peer asks: never forward twice)."""
        if FROM_PEER.get():
            return None
        return self.registry.route(device)

    async def open_remote(self, device: str, service: str | None, kind: ServiceKind | None) -> Conn:
        record = self.lookup(device)
        if record is None:
            where = f"node {self.node}" if FROM_PEER.get() else "any node"
            raise StreamError(404, "offline", f"device {device} is not connected to {where}")
        address = self.registry.peer_of(record.node)
        if address is None:
            raise StreamError(502, "peer_unknown", f"device {device}: node {record.node} unknown")
        return await self.client.open(
            record.node, address, device, service, kind, self.gw.cfg.open_timeout
        )

    def render_metrics(self) -> str:
        """The cluster's lines of /metrics (hagate_cluster_*), from the admin thread."""
        from hagate.cluster.metrics import render

        return render(self)

    def health(self) -> dict[str, object]:
        out = self.registry.health()
        out["peer_in"] = dict(self.server.counts)
        out["peer_out"] = dict(self.client.counts)
        return out

    # ------------------------------------------------------------ registry events

    def _superseded(self, event: Superseded) -> None:
        session = self.gw.sessions.get(event.device)
        if session is None or session.sid != event.sid:
            return
        session.close(encode(op="superseded"))  # the agent backs off (a twin) or is gone
        self.gw.end_session(session)

    def _changed(self, change: Change) -> None:
        before = change.before.node if change.before else None
        after = change.after.node if change.after else None
        if before != after and change.device not in self.gw.sessions:
            for front in self.gw.fronts:
                front.drop_device(change.device)  # idle upstreams through the old node

    def _peer_error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_peer_error > 5.0:  # one line per 5 s, not one per request
            self._last_peer_error = now
            log.warning("peer channel: %s", message)
