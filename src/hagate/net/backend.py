"""Where sockets come from: the kernel's TCP stack, or an in-process stand-in for tests.

The gateway and the agent make sockets only through a :class:`Backend` (listen, connect).
:class:`KernelBackend` is TCP. :class:`MemoryBackend` gives the same code real file
descriptors without any network: every listener is an AF_UNIX stream socket bound to an
abstract-namespace name derived from (host, port), and every connection is an AF_UNIX
connection to it. :class:`~hagate.net.conn.Conn`, :class:`~hagate.net.pipe.Pipe`, TLS and the
event loop's epoll work on them unchanged, ``getsockname()``/``getpeername()``/``accept()``
map the names back to (host, port), and no port is ever taken, so tests that use it can run
in parallel. It can also make an address misbehave (:class:`Fault`) the way a moving VIP or
a dead node does, at once and deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import itertools
import os
import secrets
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from hagate.net.conn import listen_socket, open_tcp, open_tcp_staggered

Address = tuple[str, int]


class Backend(Protocol):
    """What the gateway and the agent need to make sockets."""

    def listen(self, host: str, port: int, backlog: int = 4096) -> socket.socket:
        """A non-blocking listening socket; ``port`` 0 picks one (see ``getsockname()``)."""
        ...

    async def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A connected non-blocking socket, or ConnectionError (refused, timed out, ...)."""
        ...

    async def connect_staggered(
        self, host: str, port: int, timeout: float, stagger: float = 0.25, max_inflight: int = 4
    ) -> socket.socket:
        """Like :meth:`connect`, retrying silence every ``stagger`` s (a VIP that moves)."""
        ...


@dataclass(frozen=True)
class KernelBackend:
    """TCP through the kernel: :mod:`hagate.net.conn`'s functions."""

    def listen(self, host: str, port: int, backlog: int = 4096) -> socket.socket:
        return listen_socket(host, port, backlog)

    async def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        return await open_tcp(host, port, timeout)

    async def connect_staggered(
        self, host: str, port: int, timeout: float, stagger: float = 0.25, max_inflight: int = 4
    ) -> socket.socket:
        return await open_tcp_staggered(host, port, timeout, stagger, max_inflight)


KERNEL = KernelBackend()


class Fault(enum.Enum):
    """How a :class:`MemoryBackend` address misbehaves for new connections."""

    REFUSE = "refuse"  # an answer: nobody listens there (RST to the SYN)
    SILENT = "silent"  # SYNs dropped: connect waits until healed or timed out
    BLACKHOLE = "blackhole"  # the connection is made but nobody ever reads or answers
    RESET = "reset"  # made, then reset: ECONNRESET on the first read, EPIPE on a write


_PREFIX = b"\0hagate-mem:"
_EPHEMERAL = 32768
_WILDCARD = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def _name(ns: str, role: str, host: str, port: int) -> bytes:
    return _PREFIX + f"{ns}:{role}:{host}:{port}".encode()


def _address(name: object) -> Address:
    """(host, port) of an abstract name that a MemoryBackend made; ("", 0) for any other."""
    if isinstance(name, bytes) and name.startswith(_PREFIX):
        host, _, port = name[len(_PREFIX) :].decode().split(":", 2)[2].rpartition(":")
        if port.isdigit():
            return host, int(port)
    return "", 0


class MemorySocket(socket.socket):
    """An AF_UNIX stream socket that names its ends as (host, port), like a TCP socket."""

    def getsockname(self) -> Address:
        return _address(super().getsockname())

    def getpeername(self) -> Address:
        return _address(super().getpeername())

    def accept(self) -> tuple[socket.socket, Address]:
        plain, name = super().accept()
        sock = MemorySocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        return sock, _address(name)


@dataclass
class _Namespace:
    """What every view of one MemoryBackend shares."""

    token: str
    ports: itertools.count[int] = field(default_factory=lambda: itertools.count(_EPHEMERAL))
    faults: dict[Address, Fault] = field(default_factory=dict)
    # Connects waiting on a SILENT address; futures, not an Event, so that one backend can
    # serve several event loops (one per test) without binding to the first.
    waiting: dict[Address, list[asyncio.Future[None]]] = field(default_factory=dict)
    attempts: Counter[Address] = field(default_factory=Counter)
    sink: socket.socket | None = None  # BLACKHOLE and RESET connections go here
    sink_name: bytes = b""


class MemoryBackend:
    """Listeners and connections inside this process, on real fds, with injectable faults.

    ``source`` is the address connections come from (what ``accept()`` reports);
    :meth:`from_source` gives another source on the same network. Faults apply per
    destination address, to connections made after :meth:`fault` until :meth:`heal`.
    ``attempts`` counts connects per destination, faulted or not.
    """

    def __init__(self, source: str = "127.0.0.1", *, _ns: _Namespace | None = None) -> None:
        self.source = source
        self._ns = _ns or _Namespace(f"{os.getpid()}-{secrets.token_hex(6)}")
        self.attempts = self._ns.attempts

    def from_source(self, source: str) -> MemoryBackend:
        """The same network, seen from another client address."""
        return MemoryBackend(source, _ns=self._ns)

    # -------------------------------------------------------------- Backend

    def listen(self, host: str, port: int, backlog: int = 4096) -> socket.socket:
        """A listening MemorySocket; EADDRINUSE if (host, port) is taken, as with TCP."""
        sock = MemorySocket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind(sock, "L", host, port)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    async def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        ns = self._ns
        dest = (host, port)
        self.attempts[dest] += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (fault := ns.faults.get(dest)) is Fault.SILENT:
            fut = loop.create_future()
            ns.waiting.setdefault(dest, []).append(fut)
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise ConnectionError(f"cannot connect to {host}:{port}: timed out") from None
            finally:
                with contextlib.suppress(KeyError, ValueError):
                    ns.waiting[dest].remove(fut)
        if fault is Fault.REFUSE:
            raise _refused(host, port)
        sock = MemorySocket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind(sock, "C", self.source, 0)
            sock.setblocking(False)
            if fault is None:
                await self._connect_listener(sock, host, port, deadline)
            else:
                self._misbehave(sock, fault)
        except BaseException:
            sock.close()
            raise
        return sock

    async def connect_staggered(
        self, host: str, port: int, timeout: float, stagger: float = 0.25, max_inflight: int = 4
    ) -> socket.socket:
        """One attempt: a SILENT address connects the moment it is healed, so no stagger."""
        return await self.connect(host, port, timeout)

    # --------------------------------------------------------------- faults

    def fault(self, host: str, port: int, fault: Fault) -> None:
        """From now on; connects waiting on a SILENT address get the new behaviour now."""
        self._ns.faults[(host, port)] = fault
        if fault is not Fault.SILENT:
            self._wake((host, port))

    def heal(self, host: str, port: int) -> None:
        """Back to normal; connects waiting on a SILENT address go ahead now."""
        self._ns.faults.pop((host, port), None)
        self._wake((host, port))

    def close(self) -> None:
        """Drop the BLACKHOLE connections (their clients see a reset); listeners are the
        caller's to close, as with TCP."""
        ns = self._ns
        if ns.sink is not None:
            with contextlib.suppress(OSError):
                ns.sink.close()
            ns.sink = None

    def __enter__(self) -> MemoryBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- internals

    def _wake(self, dest: Address) -> None:
        for fut in self._ns.waiting.pop(dest, []):
            if not fut.done():
                fut.set_result(None)

    def _bind(self, sock: socket.socket, role: str, host: str, port: int) -> None:
        ns = self._ns
        if port:
            sock.bind(_name(ns.token, role, host, port))
            return
        for _ in range(65536 - _EPHEMERAL):
            candidate = next(ns.ports)
            if candidate > 65535:
                ns.ports = itertools.count(_EPHEMERAL)
                continue
            try:
                sock.bind(_name(ns.token, role, host, candidate))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRNOTAVAIL, "no free port")

    async def _connect_listener(
        self, sock: socket.socket, host: str, port: int, deadline: float
    ) -> None:
        """To (host, port), else to the wildcard address of its family; a full backlog is
        silence (the kernel drops the SYN), retried until ``deadline``."""
        names = [_name(self._ns.token, "L", host, port)]
        if host == "localhost":
            names.append(_name(self._ns.token, "L", "127.0.0.1", port))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        names.append(_name(self._ns.token, "L", _WILDCARD[family], port))
        loop = asyncio.get_running_loop()
        while True:
            busy = False
            for name in names:
                try:
                    sock.connect(name)
                    return
                except ConnectionRefusedError:
                    continue
                except BlockingIOError:
                    busy = True
                    break
            if not busy:
                raise _refused(host, port)
            if loop.time() >= deadline:
                raise ConnectionError(f"cannot connect to {host}:{port}: timed out")
            await asyncio.sleep(0.005)

    def _misbehave(self, sock: socket.socket, fault: Fault) -> None:
        ns = self._ns
        if ns.sink is None:  # one listener nobody accepts from: connections wait in its queue
            sink = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            ns.sink_name = _name(ns.token, "S", "sink", 0)
            sink.bind(ns.sink_name)
            sink.listen(65535)
            sink.setblocking(False)
            ns.sink = sink
        sock.connect(ns.sink_name)
        if fault is Fault.BLACKHOLE:
            return
        far, _ = ns.sink.accept()
        # Linux resets an AF_UNIX peer (ECONNRESET on its next recv, EPIPE on send) when a
        # socket is closed with unread bytes: give the far end one and close it.
        sock.send(b"\0")
        far.close()


def _refused(host: str, port: int) -> ConnectionRefusedError:
    return ConnectionRefusedError(
        errno.ECONNREFUSED, f"cannot connect to {host}:{port}: connection refused"
    )
