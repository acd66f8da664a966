"""The one module that talks to etcd: a typed face over ``aetcd`` (asyncio gRPC, etcd v3 API).

Why aetcd (see docs/scale.md): it is asyncio-native (no thread per call, unlike etcd3gw's
``requests``), maintained (1.0.0 in 2026), speaks the v3 gRPC API that etcd 3.4 serves
(leases, keep-alives, watches from a revision, transactions), and its generated stubs let a
paginated range read at a fixed revision be made where its high-level calls stop short.

Everything aetcd or gRPC can raise becomes :class:`EtcdError`; the caller decides what "etcd
is down" means. Several endpoints are tried in turn (a 3-member cluster losing one member).

TLS (:class:`~hagate.cluster.config.EtcdSecurity`): aetcd 1.0 only opens plain channels, so
:class:`_Client` opens a gRPC TLS channel (etcd's certificate checked against our CA and its
name, our client certificate presented) and, with etcd auth, authenticates on it; a token
etcd no longer knows (its ``--auth-token-ttl``) is renewed on the same channel (the watch
stream goes on) and the call retried once.

:class:`LeaseKeeper` refreshes the node's lease from a thread of its own over a blocking gRPC
channel: an event loop starved by a TLS handshake storm no longer lets the lease expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC C core: our log says why, once
import aetcd  # type: ignore[import-untyped]
import grpc  # type: ignore[import-untyped]
from aetcd import rpc as _rpc
from aetcd import watcher as _watcher

from hagate.cluster.config import EtcdSecurity

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


@dataclass(frozen=True, slots=True)
class _Access:
    """What every channel to etcd needs, with the files read once (at start)."""

    credentials: Any  # grpc.ChannelCredentials, None: plain
    options: tuple[tuple[str, Any], ...]
    user: str
    password: str

    @classmethod
    def of(cls, security: EtcdSecurity) -> _Access:
        password = security.password()
        if not security.tls:
            return cls(None, (), security.user, password)
        assert security.ca is not None
        files = {}
        for what, path in (("etcd_ca", security.ca), ("etcd_cert", security.cert)):
            if path is not None:
                files[what] = _read(what, path)
        if security.key is not None:
            files["etcd_key"] = _read("etcd_key", security.key)
        creds = grpc.ssl_channel_credentials(
            root_certificates=files["etcd_ca"],
            private_key=files.get("etcd_key"),
            certificate_chain=files.get("etcd_cert"),
        )
        name = security.server_name
        options = (("grpc.ssl_target_name_override", name),) if name else ()
        return cls(creds, options, security.user, password)

    def channel(self, target: str) -> Any:
        """A grpc.aio channel to ``target``."""
        if self.credentials is None:
            return grpc.aio.insecure_channel(target, options=self.options)
        return grpc.aio.secure_channel(target, self.credentials, options=self.options)

    def sync_channel(self, target: str) -> Any:
        """A blocking channel (the lease keeper's thread)."""
        if self.credentials is None:
            return grpc.insecure_channel(target, options=self.options)
        return grpc.secure_channel(target, self.credentials, options=self.options)


def _read(what: str, path: Any) -> bytes:
    try:
        data: bytes = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"[cluster] {what} {path}: {exc.strerror or exc}") from None
    return data


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a channel of ours (TLS when configured); auth as aetcd does it."""

    def __init__(self, access: _Access, host: str, port: int, timeout: float) -> None:
        super().__init__(host=host, port=port, timeout=timeout)
        self._access = access

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        channel = self._access.channel(f"{self._host}:{self._port}")
        metadata = None
        if self._access.user:
            try:
                resp = await rpc_auth(channel, self._access, self._timeout)
            except BaseException:
                await channel.close()
                raise
            metadata = (("token", resp),)
        self.channel, self.metadata = channel, metadata
        self.kvstub = _rpc.KVStub(channel)
        self.clusterstub = _rpc.ClusterStub(channel)
        self.leasestub = _rpc.LeaseStub(channel)
        self.maintenancestub = _rpc.MaintenanceStub(channel)
        self._watcher = _watcher.Watcher(
            _rpc.WatchStub(channel), timeout=self._timeout, metadata=metadata
        )
        self._connected.set()


async def rpc_auth(channel: Any, access: _Access, timeout: float) -> str:
    """etcd's Authenticate: a token for the other calls' metadata."""
    req = _rpc.AuthenticateRequest(name=access.user, password=access.password)
    resp = await _rpc.AuthStub(channel).Authenticate(req, timeout=timeout)
    return str(resp.token)


class Etcd:
    """A client for a list of ``(host, port)`` endpoints; moves on to the next on failure.

    ``security`` says TLS or plain and the credentials; its files are read here, so a
    missing one is a ValueError at start, naming the key and the file.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        timeout: float = 2.0,
        security: EtcdSecurity | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.security = security or EtcdSecurity()
        self._access = _Access.of(self.security)
        self._index = 0
        self._client: Any = None
        self._lock = asyncio.Lock()
        self.token_renewals = 0  # etcd auth tokens renewed after etcd forgot them

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{'https' if self.security.tls else 'http'}://{host}:{port}"

    def keeper(self, lease: int, ttl: int) -> LeaseKeeper:
        """A thread that keeps ``lease`` alive on its own channel (start() it)."""
        return LeaseKeeper(self.endpoints, self.timeout, self._access, lease, ttl, self._index)

    async def _get(self) -> Any:
        async with self._lock:  # one client even if several tasks ask at once
            if self._client is None:
                host, port = self.endpoints[self._index]
                client = _Client(self._access, host, port, self.timeout)
                try:
                    await asyncio.wait_for(client.connect(), self.timeout + 0.5)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise EtcdError(f"etcd {self.endpoint}: {self._explain(exc)}") from None
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
        for attempt in (1, 2):
            client = await self._get()
            try:
                return await asyncio.wait_for(fn(client), self.timeout + 0.5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == 1 and self._access.user and _token_expired(exc):
                    await self._renew_token(client)  # on the same channel: the watch goes on
                    continue
                raise EtcdError(f"etcd {self.endpoint}: {what}: {self._explain(exc)}") from None
        raise AssertionError("unreachable")

    async def _renew_token(self, client: Any) -> None:
        try:
            token = await rpc_auth(client.channel, self._access, self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise EtcdError(f"etcd {self.endpoint}: authenticate: {self._explain(exc)}") from None
        client.metadata = (("token", token),)
        self.token_renewals += 1
        if client._watcher is not None:  # for watches opened from now on
            client._watcher._metadata = client.metadata

    def _explain(self, exc: BaseException) -> str:
        text = _describe(exc)
        why = hint(text, self.security.tls)
        return f"{why} ({text})" if why else text

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
        return lambda c: c.kvstub.Range(req, timeout=self.timeout, metadata=c.metadata)

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
        resp = await self._call(
            "txn", lambda c: c.kvstub.Txn(req, timeout=self.timeout, metadata=c.metadata)
        )
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
            lambda c: c.maintenancestub.Status(
                _rpc.StatusRequest(), timeout=self.timeout, metadata=c.metadata
            ),
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
            raise EtcdError(f"etcd {self.endpoint}: watch: {self._explain(exc)}") from None

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


class LeaseKeeper:
    """Refreshes one lease every third of its TTL from a daemon thread, over a blocking gRPC
    channel of its own (failing over through the endpoints like :class:`Etcd`).

    The registry's event loop only reads ``last_ok``/``expired``/``error`` (plain attributes,
    written by this thread): however long that loop is starved, the lease lives while etcd
    answers this thread.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, int]],
        timeout: float,
        access: _Access,
        lease: int,
        ttl: int,
        index: int = 0,
    ) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        self.access = access
        self.lease = lease
        self.ttl = ttl
        self.interval = ttl / 3
        self.last_ok = time.monotonic()  # the lease was granted or refreshed just now
        self.expired = False  # etcd said the lease is gone (TTL 0)
        self.error = ""
        self.refreshes = 0
        self.failures = 0
        self._index = index
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {lease:x}", daemon=True)
        self._channel: Any = None
        self._token: tuple[tuple[str, str], ...] | None = None

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop refreshing (the thread ends within one request timeout)."""
        self._stop.set()

    def _run(self) -> None:
        delay = self.interval
        try:
            while not self._stop.wait(delay):
                try:
                    ttl = self._refresh()
                except Exception as exc:  # gRPC's errors, our own: counted, retried
                    self.failures += 1
                    text = _describe(exc)
                    why = hint(text, self.access.credentials is not None)
                    self.error = f"lease keepalive: {why} ({text})" if why else text
                    self._close()
                    self._index = (self._index + 1) % len(self.endpoints)
                    delay = 0.25
                    continue
                if ttl <= 0:
                    self.expired = True
                    return
                self.refreshes += 1
                self.last_ok, self.error, delay = time.monotonic(), "", self.interval
        finally:
            self._close()

    def _refresh(self) -> int:
        if self._channel is None:
            host, port = self.endpoints[self._index]
            self._channel = self.access.sync_channel(f"{host}:{port}")
            if self.access.user:
                req = _rpc.AuthenticateRequest(name=self.access.user, password=self.access.password)
                resp = _rpc.AuthStub(self._channel).Authenticate(req, timeout=self.timeout)
                self._token = (("token", str(resp.token)),)
        stub = _rpc.LeaseStub(self._channel)
        replies = stub.LeaseKeepAlive(
            iter([_rpc.LeaseKeepAliveRequest(ID=self.lease)]),
            timeout=self.timeout,
            metadata=self._token,
        )
        try:
            for reply in replies:
                return int(reply.TTL)
        finally:
            replies.cancel()
        return 0

    def _close(self) -> None:
        channel, self._channel, self._token = self._channel, None, None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()


def hint(text: str, tls: bool) -> str:
    """What a gRPC failure most likely means for an operator (empty: nothing to add)."""
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "etcd's certificate is not signed by etcd_ca ([tls] ca by default)"
    if "not in peer certificate" in text or "Hostname" in text:
        return "etcd's certificate does not name this address (etcd_server_name?)"
    if "authentication failed" in text or "invalid auth" in text:
        return "etcd refused etcd_user and the password in etcd_password_file"
    if "permission denied" in text:
        return (
            "etcd auth: this node's etcd user (etcd_user, else its certificate's CN) has no "
            "read-write role on /hagate/"
        )
    if tls and ("TSI_DATA_CORRUPTED" in text or "Socket closed" in text or "alert" in text):
        return (
            "etcd refused our TLS connection: is etcd_cert (the node certificate by default) "
            "from etcd's --trusted-ca-file, and does etcd speak TLS?"
        )
    if not tls and "Socket closed" in text:
        return "etcd closed the plain connection: does it want TLS (https, the default)?"
    return ""


def _token_expired(exc: BaseException) -> bool:
    return "auth token" in _describe(exc).lower()  # etcdserver: invalid auth token


def _describe(exc: BaseException) -> str:
    """One line: the gRPC status and details (a TLS failure names itself), not a repr."""
    details = getattr(exc, "details", None)
    code = getattr(exc, "code", None)
    if callable(details) and callable(code):
        status = getattr(code(), "name", str(code()))
        text = f"{status}: {details() or ''}".strip()
    else:
        text = str(exc).strip()
    lines = text.splitlines()
    first = lines[0][:300] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
