"""Awaitable I/O on non-blocking sockets, plain or TLS (``ssl.SSLSocket``).

asyncio's own TLS transport keeps a 256 KiB buffer per connection; an idle agent here costs
only the kernel socket and OpenSSL's state, which is what makes 10,000 idle agents cheap.
Used for handshakes and the small control messages; bulk bytes go through :mod:`hagate.net.pipe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol

WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class ProtocolError(Exception):
    """The peer sent something we cannot accept (message is safe to log)."""


class Budget(Protocol):
    """Paces expensive steps (TLS handshake steps); see hagate.gateway.admission.FairBudget."""

    async def acquire(self) -> None: ...


class Conn:
    """A non-blocking socket with an input buffer and a buffered, never-blocking write."""

    __slots__ = (
        "_drained",
        "_rfut",
        "_spurious",
        "_waiters",
        "_watching",
        "closed",
        "fd",
        "loop",
        "rbuf",
        "sock",
        "stale",
        "wbuf",
    )

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop | None = None):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop or asyncio.get_running_loop()
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.closed = False
        self._drained: asyncio.Future[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []  # woken with an error by close()
        self._rfut: asyncio.Future[None] | None = None
        self._watching = False
        self._spurious = False
        self.stale = False  # readable twice while nobody read (see idle()): not reusable

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    async def _wait(self, write: bool) -> None:
        if self.closed:
            raise ConnectionResetError("connection closed")
        if not write:
            return await self._wait_readable()
        fut = self.loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self.loop.add_writer(self.fd, ready)
        self._waiters.append(fut)
        try:
            await fut
        finally:
            self._waiters.remove(fut)
            if not self.closed:
                self.loop.remove_writer(self.fd)

    async def _wait_readable(self) -> None:
        # The reader stays registered between reads: a connection that is read again and
        # again (an agent's control connection, pinged every 300 ms) costs no epoll_ctl calls.
        fut = self.loop.create_future()
        self._rfut = fut
        if not self._watching:
            self.loop.add_reader(self.fd, self._on_readable)
            self._watching = True
        self._waiters.append(fut)
        try:
            await fut
        finally:
            self._waiters.remove(fut)
            if self._rfut is fut:
                self._rfut = None

    def _on_readable(self) -> None:
        fut = self._rfut
        if fut is None or fut.done():
            # The reader just woken has not run yet: the next select reports the socket again
            # before it reads. Allow that once (re-registering would cost two epoll_ctl calls
            # and a loop turn per read); readiness twice with nobody reading: stop watching.
            if self._spurious:
                self.loop.remove_reader(self.fd)
                self._watching = False
                self._spurious = False
                self.stale = True
            else:
                self._spurious = True
            return
        self._spurious = False
        self._rfut = None
        fut.set_result(None)

    async def handshake(self, budget: Budget | None = None) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        while True:
            if budget is not None:
                await budget.acquire()
            try:
                self.sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._wait(write=False)
            except ssl.SSLWantWriteError:
                await self._wait(write=True)

    def idle(self) -> None:
        """The connection waits unused (an upstream pool): from now on ``stale`` turns True
        once it is readable with nobody reading, i.e. the peer closed it or sent bytes nobody
        asked for.

        The event loop tells, so a pool checks liveness with no syscall (a TLS read attempt
        costs a failing SSL_read and an exception per reuse). It takes two loop turns of
        readiness (one may be left over from the read that just ended the last exchange); a
        close that lands in between is the retry's job, as with any pooled connection.
        """
        self.stale = False
        self._spurious = False
        if not self._watching and not self.closed:
            self.loop.add_reader(self.fd, self._on_readable)
            self._watching = True

    def recv_nowait(self, n: int = 65536) -> bytes | None:
        """What :meth:`recv_some` would give if it is there now; None if the read would
        wait (then call ``recv_some``, which also handles a TLS read that must write first).

        A keep-alive peer has usually sent its next request by the time the last answer is
        done with: this reads it without a coroutine, a future or a deadline.
        """
        if self.rbuf:
            data = bytes(self.rbuf)
            self.rbuf.clear()
            return data
        if self.closed:
            raise ConnectionResetError("connection closed")
        try:
            return self.sock.recv(n)
        except WOULD_BLOCK:
            return None

    async def recv_some(self, n: int = 65536, wait: bool = False) -> bytes:
        """Bytes from the buffer or the socket; b"" at end of stream.

        ``wait``: the caller knows nothing can have arrived yet (it has just sent a request),
        so wait for readiness before the first read instead of trying one that fails.
        """
        if self.rbuf:
            data = bytes(self.rbuf)
            self.rbuf.clear()
            return data
        sock = self.sock
        if wait and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            if self.closed:
                raise ConnectionResetError("connection closed")
            await self._wait_readable()
        while True:
            try:
                return sock.recv(n)
            except ssl.SSLWantWriteError:
                await self._wait(write=True)
            except WOULD_BLOCK:
                if self.closed:
                    raise ConnectionResetError("connection closed") from None
                await self._wait_readable()

    async def read_until(self, sep: bytes, limit: int) -> bytes:
        """Bytes up to and including ``sep``; the rest stays buffered."""
        start = 0
        while True:
            i = self.rbuf.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                if end > limit:
                    raise ProtocolError(f"more than {limit} bytes without {sep!r}")
                data = bytes(self.rbuf[:end])
                del self.rbuf[:end]
                return data
            if len(self.rbuf) > limit:
                raise ProtocolError(f"more than {limit} bytes without {sep!r}")
            start = max(0, len(self.rbuf) - len(sep) + 1)
            while True:
                if self.closed:
                    raise ConnectionResetError("connection closed")
                try:
                    chunk = self.sock.recv(65536)
                    break
                except ssl.SSLWantWriteError:
                    await self._wait(write=True)
                except WOULD_BLOCK:
                    await self._wait(write=False)
            if not chunk:
                raise EOFError("connection closed")
            self.rbuf += chunk

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send now if the socket takes it, else buffer and flush when writable."""
        if self.closed:
            return
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except WOULD_BLOCK:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.wbuf += data[n:]
            self.loop.add_writer(self.fd, self._flush)

    def _flush(self) -> None:
        try:
            n = self.sock.send(self.wbuf)
        except WOULD_BLOCK:
            return
        except OSError:
            self.close()
            return
        del self.wbuf[:n]
        if not self.wbuf:
            self.loop.remove_writer(self.fd)
            if self._drained and not self._drained.done():
                self._drained.set_result(None)

    async def drain(self) -> None:
        if not self.wbuf:
            return
        if self._drained is None or self._drained.done():
            self._drained = self.loop.create_future()
        await self._drained

    def detach(self) -> socket.socket:
        """Hand the socket over (to a :class:`~hagate.net.pipe.Pipe`)."""
        if self._watching:
            self.loop.remove_reader(self.fd)
            self._watching = False
        self.closed = True
        return self.sock

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.wbuf:
            self.loop.remove_writer(self.fd)
        self.loop.remove_reader(self.fd)
        for fut in [self._drained, *self._waiters]:
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionResetError("connection closed"))
        with contextlib.suppress(OSError):
            self.sock.close()


def set_nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_keepalive(sock: socket.socket, idle: int = 5, interval: int = 2, count: int = 3) -> None:
    """Kernel keepalive so that a vanished peer is reaped without any Python work."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, (idle + interval * count) * 1000
        )


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` (with a default port) -> (host, port)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: expected HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: bad port {port_text!r}")
    return host or "0.0.0.0", int(port_text)


async def open_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking TCP socket."""
    loop = asyncio.get_running_loop()
    try:
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        infos: list[tuple[Any, ...]] = [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: Exception | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc
    raise ConnectionError(f"cannot connect to {host}:{port}: {last}")


async def _connect_one(
    loop: asyncio.AbstractEventLoop,
    make_socket: Callable[[int], socket.socket],
    family: int,
    addr: Any,
) -> socket.socket:
    sock = make_socket(family)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _stream_socket(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


async def open_tcp_staggered(
    host: str,
    port: int,
    timeout: float,
    stagger: float = 0.25,
    max_inflight: int = 4,
    make_socket: Callable[[int], socket.socket] = _stream_socket,
) -> socket.socket:
    """Like :func:`open_tcp`, but while no SYN has been answered a fresh attempt starts every
    ``stagger`` seconds (at most ``max_inflight`` at once); the first to connect wins.

    A gateway behind a VIP that is moving answers nothing until the new master's gratuitous
    ARP; the kernel would retransmit the first SYN only 1 s, then 3 s after it was sent, so a
    single attempt lands up to a second or two after the VIP has moved. Earlier attempts keep
    running, so a slow but live path still connects.
    """
    loop = asyncio.get_running_loop()
    try:
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        addr: Any = (host, port)
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise ConnectionError(f"cannot resolve {host}") from None
        family, _, _, _, addr = infos[0]
    deadline = loop.time() + timeout
    pending: set[asyncio.Task[socket.socket]] = set()
    last: BaseException | None = None
    try:
        while True:
            if len(pending) < max_inflight:
                pending.add(asyncio.ensure_future(_connect_one(loop, make_socket, family, addr)))
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=min(stagger, remaining), return_when=asyncio.FIRST_COMPLETED
            )
            winner: socket.socket | None = None
            for task in done:
                exc = task.exception()
                if exc is not None:
                    last = exc
                elif winner is None:
                    winner = task.result()
                else:
                    task.result().close()
            if winner is not None:
                return winner
            if done and not pending:
                break  # refused or unreachable: an answer, not silence; the caller backs off
    finally:
        for task in pending:
            task.cancel()
            task.add_done_callback(_close_result)
    raise ConnectionError(f"cannot connect to {host}:{port}: {last or 'timed out'}")


def _close_result(task: asyncio.Task[socket.socket]) -> None:
    """A losing attempt that connected after all: close its socket."""
    if not task.cancelled() and task.exception() is None:
        task.result().close()


def listen_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
