"""The device registry's driver: this node's lease, its records, and the watch that keeps
every node's :class:`~hagate.cluster.routes.RouteTable` current.

* One lease per node (``lease_ttl``, refreshed every third of it): the node's key and all its
  device keys hang on it, so a crashed node's records vanish together when it expires, and a
  graceful stop revokes it (they vanish at once). The refreshes run in a thread of their own
  (:class:`~hagate.cluster.etcd.LeaseKeeper`): a gateway loop starved by a handshake storm
  must not lose the lease, and with it every record of the node.
* Writes are asynchronous: attaching a device never waits for etcd. A writer publishes the
  difference between the live local sessions and what this lease holds, many puts at a time.
* etcd down (no quorum, all endpoints dead, lease keep-alive failing): the node keeps serving
  its own devices, routes to other nodes stay as last seen (a node that no longer holds a
  device answers "not here": a user is never spliced to a device's old session), /healthz and
  the log say so, and on return it re-reads everything at one revision, re-publishes what is
  missing or different, and watches again from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from hagate.cluster.etcd import MAX_TXN_OPS, Etcd, EtcdError, LeaseKeeper, WatchEvent, WatchLost
from hagate.cluster.routes import (
    ROOT,
    Change,
    Publish,
    Record,
    RouteTable,
    Verdict,
    device_key,
    node_key,
    node_value,
    reconcile,
    session_value,
)
from hagate.tunnel.wire import ServiceSpec

log = logging.getLogger("hagate.cluster")

RETRY_MIN, RETRY_MAX = 0.2, 1.0


class EtcdState(Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Superseded:
    """A local session that a newer one on ``by.node`` replaced."""

    device: str
    sid: str
    by: Record


class Registry:
    """Run with ``start()``/``stop()``; ``publish``/``unpublish`` never block."""

    def __init__(
        self,
        etcd: Etcd,
        node: str,
        peer: str,
        lease_ttl: int = 10,
        on_superseded: Callable[[Superseded], None] | None = None,
        on_change: Callable[[Change], None] | None = None,
    ) -> None:
        self.etcd = etcd
        self.node = node
        self.peer = peer
        self.lease_ttl = max(2, lease_ttl)
        self.on_superseded = on_superseded
        self.on_change = on_change
        self.table = RouteTable()
        self.local: dict[str, Publish] = {}
        self.state = EtcdState.CONNECTING
        self.since = time.monotonic()
        self.last_error = ""
        self.lease = 0
        self.writes = 0  # puts and deletes done
        self.write_errors = 0
        self.transactions = 0  # etcd transactions those writes took
        self.outages = 0
        self.keeper: LeaseKeeper | None = None
        self._keepalives_before = (0, 0)  # refreshes, failures of the keepers that ended
        self._written: dict[str, str] = {}  # device -> sid held by our current lease
        self._put_at: dict[str, tuple[str, int]] = {}  # device -> (sid, revision of our put)
        self.addresses: tuple[str, ...] = ()  # published in our node key (VIPs held)
        self._node_dirty = False
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()

    # ------------------------------------------------------------------ API

    def publish(self, device: str, sid: str, services: tuple[ServiceSpec, ...]) -> None:
        self.local[device] = Publish(device, sid, services)
        self._dirty.add(device)
        self._wake.set()

    def unpublish(self, device: str, sid: str) -> None:
        pub = self.local.get(device)
        if pub is not None and pub.sid == sid:
            del self.local[device]
            self._dirty.add(device)
            self._wake.set()

    def set_addresses(self, addresses: tuple[str, ...]) -> None:
        """This node's own addresses now; the node key is rewritten when they change."""
        if addresses != self.addresses:
            self.addresses = addresses
            self._node_dirty = True
            self._wake.set()

    def route(self, device: str) -> Record | None:
        """The node to splice a user to for ``device`` (None: no other node has it)."""
        return self.table.route(device, self.node)

    def peer_of(self, node: str) -> str | None:
        info = self.table.nodes.get(node)
        return info.peer if info is not None else None

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def wait_up(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_synced(self, timeout: float) -> bool:
        """Until etcd is up and every local change is written (tests, graceful stops)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if self.state is EtcdState.UP and not self._dirty:
                return True
            await asyncio.sleep(0.02)
        return False

    def health(self) -> dict[str, object]:
        """A snapshot for /healthz and `hagate cluster status` (plain values only)."""
        return {
            "etcd": self.state.value,
            "etcd_endpoint": self.etcd.endpoint,
            "etcd_for_s": round(time.monotonic() - self.since, 1),
            "etcd_error": self.last_error,
            "lease": f"{self.lease:x}" if self.lease else "",
            "revision": self.table.revision,
            "local_devices": len(self.local),
            "unwritten": len(self._dirty),
            "registry_writes": self.writes,
            "registry_txns": self.transactions,
            "nodes": sorted(self.table.nodes),
            "addresses": {n.name: list(n.addresses) for n in list(self.table.nodes.values())},
            "devices_per_node": self.table.devices_per_node(),
            "outages": self.outages,
            "lease_keepalives": self.keepalives[0],
            "lease_keepalive_failures": self.keepalives[1],
        }

    @property
    def keepalives(self) -> tuple[int, int]:
        """Lease refreshes done and failed, over every session so far."""
        done, failed = self._keepalives_before
        if self.keeper is not None:
            done, failed = done + self.keeper.refreshes, failed + self.keeper.failures
        return done, failed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"registry {self.node}")

    async def stop(self, graceful: bool = True) -> None:
        """Stop; ``graceful`` revokes the lease so every record of this node goes at once."""
        task, self._task = self._task, None
        while task is not None and not task.done():
            # Again until it ends: Python 3.11's wait_for can lose a cancel that lands as its
            # inner call completes (the driver then slept and retried: a stop hung 30 s).
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        self._stop_keeper()
        if graceful and self.lease and self.state is EtcdState.UP:
            with contextlib.suppress(EtcdError):
                await self.etcd.revoke(self.lease)
        await self.etcd.close()

    # ------------------------------------------------------------------ driver

    async def _run(self) -> None:
        delay = RETRY_MIN
        while True:
            try:
                await self._session()
            except EtcdError as exc:
                self._set_down(str(exc))
            except Exception as exc:  # a bug must not end the registry for good: log, retry
                log.exception("registry session failed")
                self._set_down(f"internal error: {type(exc).__name__}: {exc}")
            await self.etcd.failover()
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2) if self.state is not EtcdState.UP else RETRY_MIN

    def _set_down(self, error: str) -> None:
        self._up.clear()
        self.last_error = error
        if self.state is not EtcdState.DOWN:
            self.outages += 1 if self.state is EtcdState.UP else 0
            self.state = EtcdState.DOWN
            self.since = time.monotonic()
            log.warning(
                "etcd down (%s): still serving the %d device(s) attached here; routes to "
                "other nodes frozen as of revision %d",
                error,
                len(self.local),
                self.table.revision,
            )

    async def _session(self) -> None:
        etcd = self.etcd
        if self.lease and await etcd.keepalive(self.lease) > 0:
            pass  # the same lease survived the outage: our keys are still there
        else:
            self.lease = await etcd.grant(self.lease_ttl)
        # Refreshed from now on, while the table loads (16 s for 1 M keys: longer than a TTL).
        self._stop_keeper()
        self.keeper = etcd.keeper(self.lease, self.lease_ttl).start()
        self._node_dirty = False
        await etcd.put(node_key(self.node), node_value(self.peer, self.addresses), self.lease)
        kvs, revision = await etcd.get_prefix(ROOT.encode())
        changes = self.table.reset([(kv.key, kv.value, kv.mod_revision) for kv in kvs], revision)
        ours = {kv.key for kv in kvs if kv.lease == self.lease}
        own = self.table.own_keys(self.node)
        held = {d: r for d, r in own.items() if device_key(d, self.node) in ours}
        self._written = {d: r.sid for d, r in held.items()}
        stale = set(own) - set(held)  # under a lease that expired: write again or delete
        # A session whose key went with an expired lease keeps its place in the order: if
        # another node wrote the device after our put, that session is the newer one.
        for device, (sid, rev) in self._put_at.items():
            pub = self.local.get(device)
            per = self.table.records.get(device)
            if pub is not None and pub.sid == sid and per and self.node not in per:
                per[self.node] = Record(device, self.node, sid, rev, pub.services)
                changes.append(Change(device, None, self.table.winner(device)))
        self.table.recount()
        self._dirty |= {op.device for op in reconcile(self.local, held)} | stale
        queue: asyncio.Queue[WatchEvent | WatchLost] = asyncio.Queue()
        cancel = await etcd.watch(ROOT.encode(), revision + 1, queue)
        was = self.state
        self.state, self.since, self.last_error = EtcdState.UP, time.monotonic(), ""
        self._up.set()
        if was is EtcdState.DOWN:
            log.info(
                "etcd back (%s): caught up at revision %d, re-publishing %d device(s)",
                etcd.endpoint,
                revision,
                len(self._dirty),
            )
        else:
            log.info("etcd up (%s): node %s, lease %x", etcd.endpoint, self.node, self.lease)
        for change in changes:
            self._changed(change)
        self._wake.set()
        assert self.keeper is not None
        tasks = [
            asyncio.create_task(self._keepalive(self.keeper)),
            asyncio.create_task(self._writer()),
            asyncio.create_task(self._events(queue)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            raise EtcdError("registry session ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await cancel()

    def _stop_keeper(self) -> None:
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.stop()
            done, failed = self._keepalives_before
            self._keepalives_before = (done + keeper.refreshes, failed + keeper.failures)

    async def _keepalive(self, keeper: LeaseKeeper) -> None:
        """Watch the keeper thread: the lease is refreshed there every third of the TTL, a
        slow or failed refresh retried, and etcd counts as down only when the lease is about
        to run out (a loaded etcd is not a dead one; a dead member ends the watch at once)."""
        try:
            while True:
                await asyncio.sleep(0.1)
                if keeper.expired:
                    self.lease = 0
                    raise EtcdError("lease expired")
                if time.monotonic() - keeper.last_ok > self.lease_ttl * 0.9:
                    raise EtcdError(f"etcd {self.etcd.endpoint}: {keeper.error or 'no keepalive'}")
                if keeper.error:
                    self.last_error = keeper.error
        finally:
            self._stop_keeper()

    async def _writer(self) -> None:
        """Write what changed, up to MAX_TXN_OPS keys in one etcd transaction (one revision,
        one raft entry: a reconnect storm of 33,000 devices is ~260 writes, not 33,000).
        A failed transaction is retried with a back-off; only a lease TTL of failures counts
        as etcd being down."""
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._node_dirty:
                self._node_dirty = False
                try:
                    value = node_value(self.peer, self.addresses)
                    await self.etcd.put(node_key(self.node), value, self.lease)
                except EtcdError:
                    self._node_dirty = True  # again with the next write or keep-alive
            while self._dirty:
                batch = [self._dirty.pop() for _ in range(min(MAX_TXN_OPS, len(self._dirty)))]
                try:
                    await self._write(batch)
                except EtcdError as exc:
                    self._dirty.update(batch)
                    self.write_errors += len(batch)
                    failing_since = failing_since or loop.time()
                    if loop.time() - failing_since > self.lease_ttl:
                        raise
                    self.last_error = str(exc)
                    await asyncio.sleep(0.2)
                    continue
                failing_since = None

    async def _write(self, batch: list[str]) -> None:
        puts: list[tuple[str, Publish]] = []
        deletes: list[str] = []
        for device in batch:
            want = self.local.get(device)
            have = self._written.get(device)
            if want is not None:
                if have != want.sid:
                    puts.append((device, want))
            elif have is not None or self.node in self.table.records.get(device, {}):
                deletes.append(device)
        if not puts and not deletes:
            return
        rev = await self.etcd.write_many(
            [(device_key(d, self.node), session_value(p.sid, p.services)) for d, p in puts],
            [device_key(d, self.node) for d in deletes],
            self.lease,
        )
        for device, pub in puts:
            self._written[device] = pub.sid
            self._put_at[device] = (pub.sid, rev)
        for device in deletes:
            self._written.pop(device, None)
            self._put_at.pop(device, None)
            self.table.delete(device_key(device, self.node), rev)  # before the watch says so
        self.writes += len(puts) + len(deletes)
        self.transactions += 1

    async def _events(self, queue: asyncio.Queue[WatchEvent | WatchLost]) -> None:
        while True:
            ev = await queue.get()
            if isinstance(ev, WatchLost):
                raise EtcdError(f"watch lost: {ev.reason}")
            if ev.put:
                change = self.table.put(ev.key, ev.value, ev.revision)
            else:
                change = self.table.delete(ev.key, ev.revision)
            if change is not None:
                self._changed(change)

    def _changed(self, change: Change) -> None:
        device = change.device
        pub = self.local.get(device)
        if pub is not None and self.table.verdict(device, self.node, pub.sid) is Verdict.SUPERSEDED:
            by = self.table.winner(device)
            assert by is not None
            log.info(
                "device %s: session %s superseded by session %s on node %s (revision %d)",
                device,
                pub.sid,
                by.sid,
                by.node,
                by.revision,
            )
            self.unpublish(device, pub.sid)
            if self.on_superseded is not None:
                self.on_superseded(Superseded(device, pub.sid, by))
        if self.on_change is not None:
            self.on_change(change)
