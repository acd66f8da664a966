"""Copy bytes both ways between two sockets (plain or TLS), with the kernel's flow control.

Each direction reads into one buffer shared by every pipe of the process and writes it out
at once; only when the destination cannot take everything is the remainder copied, reading
from the source stops, and it resumes when the destination drains. A stalled peer therefore
holds back only its own stream. End of stream is passed on as a TCP half-close (FIN).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

from hagate.net.conn import WOULD_BLOCK

BUFFER_SIZE = 256 * 1024
_BUF = bytearray(BUFFER_SIZE)
_VIEW = memoryview(_BUF)
TLS_RECORD = 16384  # the largest TLS plaintext record (RFC 8446 §5.1)


class _Half:
    __slots__ = (
        "counter",
        "dfd",
        "done",
        "dst",
        "eof",
        "idx",
        "loop",
        "pending",
        "pipe",
        "reading",
        "sfd",
        "src",
        "src_tls",
    )

    def __init__(
        self,
        pipe: Pipe,
        src: socket.socket,
        dst: socket.socket,
        counter: list[int] | None,
        idx: int,
    ) -> None:
        self.pipe = pipe
        self.loop = pipe.loop
        self.src = src
        self.dst = dst
        self.sfd = src.fileno()
        self.dfd = dst.fileno()
        self.src_tls = isinstance(src, ssl.SSLSocket)
        self.counter = counter
        self.idx = idx
        self.pending: memoryview | None = None
        self.eof = False
        self.done = False
        self.reading = False

    def start(self, initial: bytes) -> None:
        if initial:
            self._send(memoryview(initial))
            if self.pipe.closed:
                return
        if self.pending is None:
            self.reading = True
            self.loop.add_reader(self.sfd, self.on_readable)
            if self.src_tls:  # OpenSSL may already hold decrypted bytes
                self.loop.call_soon(self.on_readable)

    def on_readable(self) -> None:
        if not self.reading or self.pipe.closed:
            return
        src = self.src
        view = _VIEW
        filled = 0
        eof = False
        try:
            while filled < BUFFER_SIZE:
                n = src.recv_into(view[filled:])
                if n == 0:
                    eof = True
                    break
                filled += n
                # One recv takes all the kernel has; a TLS read yields one record. A short
                # record with nothing left decrypted ends a burst: the socket is level-
                # triggered, so stopping here costs nothing and saves a failing read.
                if not isinstance(src, ssl.SSLSocket) or (n < TLS_RECORD and not src.pending()):
                    break
        except WOULD_BLOCK:
            pass
        except ssl.SSLEOFError:
            eof = True
        except (OSError, ValueError):
            self.pipe.abort()
            return
        if filled:
            if self.counter is not None:
                self.counter[self.idx] += filled
            self._send(view[:filled])
            if self.pipe.closed:
                return
        if eof:
            self._eof()
        elif (
            filled == BUFFER_SIZE
            and self.pending is None
            and isinstance(src, ssl.SSLSocket)
            and src.pending()
        ):
            self.loop.call_soon(self.on_readable)

    def _send(self, data: memoryview) -> None:
        try:
            n = self.dst.send(data)
        except WOULD_BLOCK:
            n = 0
        except (OSError, ValueError):
            self.pipe.abort()
            return
        if n < len(data):
            # Copy out of the shared buffer; TLS retries need the same bytes again.
            self.pending = memoryview(bytes(data[n:]))
            if self.reading:
                self.reading = False
                self.loop.remove_reader(self.sfd)
            self.loop.add_writer(self.dfd, self.on_writable)

    def on_writable(self) -> None:
        if self.pipe.closed or self.pending is None:
            return
        data = self.pending
        try:
            n = self.dst.send(data)
        except WOULD_BLOCK:
            return
        except (OSError, ValueError):
            self.pipe.abort()
            return
        if n < len(data):
            self.pending = data[n:]
            return
        self.pending = None
        self.loop.remove_writer(self.dfd)
        if self.eof:
            self._finish()
        else:
            self.reading = True
            self.loop.add_reader(self.sfd, self.on_readable)
            self.loop.call_soon(self.on_readable)

    def _eof(self) -> None:
        self.eof = True
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.sfd)
        if self.pending is None:
            self._finish()

    def _finish(self) -> None:
        # socket.socket.shutdown, not SSLSocket.shutdown: keep the TLS state for reading.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.dst, socket.SHUT_WR)
        self.done = True
        self.pipe.half_done()


class Pipe:
    """Forward ``a`` <-> ``b`` until both directions end; then close both and call back."""

    __slots__ = ("a", "ab", "b", "ba", "closed", "loop", "on_close")

    def __init__(
        self,
        a: socket.socket,
        b: socket.socket,
        *,
        on_close: Callable[[], None] | None = None,
        counter: list[int] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``counter[0]`` counts bytes a->b, ``counter[1]`` bytes b->a."""
        self.loop = loop or asyncio.get_running_loop()
        self.a = a
        self.b = b
        self.on_close = on_close
        self.closed = False
        a.setblocking(False)
        b.setblocking(False)
        self.ab = _Half(self, a, b, counter, 0)
        self.ba = _Half(self, b, a, counter, 1)

    def start(self, a_to_b: bytes = b"", b_to_a: bytes = b"") -> Pipe:
        """Begin; ``a_to_b``/``b_to_a`` are bytes already read from a/b to pass on first."""
        self.ab.start(a_to_b)
        if not self.closed:
            self.ba.start(b_to_a)
        return self

    def half_done(self) -> None:
        if self.ab.done and self.ba.done:
            self.abort()

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.a, self.b):
            fd = sock.fileno()
            if fd >= 0:
                self.loop.remove_reader(fd)
                self.loop.remove_writer(fd)
            with contextlib.suppress(OSError):
                sock.close()
        if self.on_close is not None:
            self.on_close()
