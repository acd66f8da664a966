"""The one module that talks to etcd: a typed face over ``aetcd`` (asyncio gRPC, etcd v3 API).

Why aetcd (see docs/scale.md): it is asyncio-native (no thread per call, unlike etcd3gw's
``requests``), maintained (1.0.0 in 2026), speaks the v3 gRPC API that etcd 3.4 serves
(leases, keep-alives, watches from a revision, transactions), and its generated stubs let a
paginated range read at a fixed revision be made where its high-level calls stop short.

Everything aetcd or gRPC can raise becomes :class:`EtcdError`; the caller decides what "etcd
is down" means. Several endpoints are tried in turn (a 3-member cluster losing one member).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aetcd  # type: ignore[import-untyped]
from aetcd import rpc as _rpc

PAGE = 2000  # keys per range request (stays far below gRPC's 4 MiB message limit)
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


class EtcdError(Exception):
    """etcd could not be reached or refused the request (message says which endpoint)."""


@dataclass(frozen=True, slots=True)
class KV:
    key: bytes
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    put: bool  # False: a delete
    key: bytes
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class WatchLost:
    """The watch stream ended (etcd down, member lost, compacted): snapshot again."""

    reason: str


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix``."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\x00"


class Etcd:
    """A client for a list of ``(host, port)`` endpoints; moves on to the next on failure."""

    def __init__(self, endpoints: list[tuple[str, int]], timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._index = 0
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    async def _get(self) -> Any:
        if self._client is None:
            host, port = self.endpoints[self._index]
            client = aetcd.Client(host=host, port=port, timeout=self.timeout)
            try:
                await client.connect()
            except Exception as exc:
                raise EtcdError(f"etcd {self.endpoint}: {_describe(exc)}") from None
            self._client = client
        return self._client

    async def failover(self) -> None:
        """Drop the current connection and use the next endpoint from now on."""
        await self.close()
        self._index = (self._index + 1) % len(self.endpoints)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 2.0)

    async def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        client = await self._get()
        try:
            return await asyncio.wait_for(fn(client), self.timeout + 0.5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise EtcdError(f"etcd {self.endpoint}: {what}: {_describe(exc)}") from None

    # ------------------------------------------------------------------ KV

    async def get_prefix(self, prefix: bytes) -> tuple[list[KV], int]:
        """Every key under ``prefix`` at one revision (read page by page); that revision."""
        end = prefix_end(prefix)
        out: list[KV] = []
        start, revision = prefix, 0
        while True:
            req = _rpc.RangeRequest(key=start, range_end=end, limit=PAGE, revision=revision)
            resp = await self._call("range", self._range(req))
            revision = revision or int(resp.header.revision)
            out.extend(KV(kv.key, kv.value, int(kv.mod_revision), int(kv.lease)) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                return out, revision
            start = bytes(resp.kvs[-1].key) + b"\x00"

    def _range(self, req: Any) -> Callable[[Any], Any]:
        return lambda c: c.kvstub.Range(req, timeout=self.timeout)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Write ``key``; the revision of the write."""
        resp = await self._call("put", lambda c: c.put(key, value, lease=lease or None))
        return int(resp.header.revision)

    async def write_many(
        self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], lease: int
    ) -> int:
        """Puts (under ``lease``) and deletes in one transaction, one revision; that revision.

        At most ``MAX_TXN_OPS`` operations (etcd's --max-txn-ops default).
        """
        if len(puts) + len(deletes) > MAX_TXN_OPS:
            raise ValueError(f"at most {MAX_TXN_OPS} operations in one transaction")
        ops = [
            _rpc.RequestOp(request_put=_rpc.PutRequest(key=k, value=v, lease=lease))
            for k, v in puts
        ] + [_rpc.RequestOp(request_delete_range=_rpc.DeleteRangeRequest(key=k)) for k in deletes]
        req = _rpc.TxnRequest(compare=[], success=ops, failure=[])
        resp = await self._call("txn", lambda c: c.kvstub.Txn(req, timeout=self.timeout))
        return int(resp.header.revision)

    async def delete(self, key: bytes) -> int:
        resp = await self._call("delete", lambda c: c.delete(key))
        return int(resp.header.revision) if resp is not None else 0

    # ------------------------------------------------------------------ leases

    async def grant(self, ttl: int) -> int:
        lease = await self._call("lease grant", lambda c: c.lease(ttl))
        return int(lease.id)

    async def keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its TTL, or 0 if etcd no longer has it (it expired)."""
        reply = await self._call("lease keepalive", lambda c: c.refresh_lease(lease))
        return int(reply.TTL) if reply is not None else 0

    async def revoke(self, lease: int) -> None:
        await self._call("lease revoke", lambda c: c.revoke_lease(lease))

    async def status(self) -> dict[str, object]:
        """The current endpoint's member status (version, leader id, raft index)."""
        st = await self._call(
            "status",
            lambda c: c.maintenancestub.Status(_rpc.StatusRequest(), timeout=self.timeout),
        )
        return {
            "endpoint": self.endpoint,
            "version": str(st.version),
            "leader": int(st.leader),
            "member": int(st.header.member_id),
            "raft_index": int(st.raftIndex),
        }

    # ------------------------------------------------------------------ watch

    async def watch(
        self, prefix: bytes, start_revision: int, queue: asyncio.Queue[WatchEvent | WatchLost]
    ) -> Callable[[], Any]:
        """Put every event under ``prefix`` from ``start_revision`` on ``queue``, then a
        :class:`WatchLost` when the stream ends. Returns the coroutine function that cancels.
        """
        client = await self._get()
        try:
            watch = await asyncio.wait_for(
                client.watch_prefix(prefix, start_revision=start_revision), self.timeout + 0.5
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise EtcdError(f"etcd {self.endpoint}: watch: {_describe(exc)}") from None

        async def pump() -> None:
            try:
                async for ev in watch:
                    kv = ev.kv
                    put = ev.kind == aetcd.EventKind.PUT
                    await queue.put(WatchEvent(put, kv.key, kv.value, int(kv.mod_revision)))
                queue.put_nowait(WatchLost("watch ended"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                queue.put_nowait(WatchLost(_describe(exc)))

        task = asyncio.create_task(pump())

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(watch.cancel(), 1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return cancel


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
