"""Pipe: both directions, half-close passed on, a stalled reader holds back only its source."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios

from hagate.net.conn import Conn
from hagate.net.pipe import BUFFER_SIZE, Pipe

from .conftest import Pki, pattern, read_all, read_exactly, registered, run, small_pair, tls_pair


class Rig:
    """``A`` -- a <Pipe> b -- ``B``: the test holds A and B, the pipe a and b."""

    def __init__(self, buf: int | None = None) -> None:
        if buf is None:
            self.A, self.a = socket.socketpair()
            self.b, self.B = socket.socketpair()
            for s in (self.A, self.B):
                s.setblocking(False)
        else:
            self.A, self.a = small_pair(buf)
            self.b, self.B = small_pair(buf)
        self.counter = [0, 0]
        self.closes = 0
        self.closed = asyncio.Event()
        self.pipe = Pipe(self.a, self.b, counter=self.counter, on_close=self._on_close)

    def _on_close(self) -> None:
        self.closes += 1
        self.closed.set()

    def close(self) -> None:
        self.pipe.abort()
        self.A.close()
        self.B.close()


def queued(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (FIONREAD)."""
    return int(struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0])


def fill(sock: socket.socket, data: bytes) -> int:
    """Send as much of ``data`` as the socket takes now; how much."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
    except BlockingIOError:
        pass
    return sent


def test_both_directions_with_initial_bytes_and_counters() -> None:
    async def main() -> None:
        rig = Rig()
        rig.pipe.start(a_to_b=b"early-a ", b_to_a=b"early-b ")
        up, down = pattern(500_000, 1), pattern(300_000, 2)
        loop = asyncio.get_running_loop()
        got_b, got_a, _, _ = await asyncio.gather(
            read_exactly(rig.B, 8 + len(up)),
            read_exactly(rig.A, 8 + len(down)),
            loop.sock_sendall(rig.A, up),
            loop.sock_sendall(rig.B, down),
        )
        assert got_b == b"early-a " + up
        assert got_a == b"early-b " + down
        assert rig.counter == [len(up), len(down)]  # counts what it read, not the initial bytes
        assert not rig.pipe.closed
        rig.close()
        assert rig.closes == 1

    run(main())


def test_half_close_passes_through_and_the_other_way_keeps_going() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = Rig()
        rig.pipe.start()
        await loop.sock_sendall(rig.A, b"request")
        rig.A.shutdown(socket.SHUT_WR)  # FIN from A
        assert await read_all(rig.B) == b"request"  # B sees the FIN after the bytes
        assert not rig.pipe.closed
        await loop.sock_sendall(rig.B, b"response after the FIN")
        assert await read_exactly(rig.A, 22) == b"response after the FIN"
        rig.B.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(rig.closed.wait(), 1.0)  # both ways ended: closed, called back
        assert await read_all(rig.A) == b""
        assert rig.a.fileno() == -1 and rig.b.fileno() == -1
        assert rig.closes == 1
        rig.close()
        assert rig.closes == 1  # abort after the end calls back no more

    run(main())


def test_a_stalled_reader_stops_reading_from_the_source() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = Rig(buf=4096)
        rig.pipe.start()
        offered = pattern(1 << 20, 3)
        sent = 0
        for _ in range(50):  # A writes as fast as it may while B reads nothing
            sent += fill(rig.A, offered[sent:])
            await asyncio.sleep(0.002)
        waiting = queued(rig.a)
        assert waiting > 0  # bytes sit in the source's queue: the pipe stopped reading it...
        assert registered(loop, rig.a.fileno())[0] is False
        assert rig.pipe.ab.pending is not None
        await asyncio.sleep(0.02)
        assert queued(rig.a) == waiting  # ...and does not start again while B is stalled
        assert sent < BUFFER_SIZE + 256 * 1024  # what is held: buffers and one pending chunk
        assert fill(rig.A, offered[sent:]) == 0  # A is pushed back by its own kernel buffer

        # The other direction is not held back.
        await loop.sock_sendall(rig.B, b"still talking")
        assert await read_exactly(rig.A, 13) == b"still talking"

        # B reads: everything arrives, in order, and the pipe reads A again.
        reader = asyncio.ensure_future(read_exactly(rig.B, len(offered)))
        await loop.sock_sendall(rig.A, offered[sent:])
        assert await asyncio.wait_for(reader, 3.0) == offered
        assert rig.pipe.ab.pending is None and rig.pipe.ab.reading
        rig.close()

    run(main())


def test_fin_waits_for_the_bytes_still_pending() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = Rig(buf=4096)
        rig.pipe.start()
        data = pattern(200_000, 4)
        sender = asyncio.ensure_future(loop.sock_sendall(rig.A, data))
        await asyncio.sleep(0.02)
        assert rig.pipe.ab.pending is not None
        reader = asyncio.ensure_future(read_all(rig.B))
        await sender
        rig.A.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(reader, 2.0) == data  # no byte lost to an early FIN
        rig.close()

    run(main())


def test_abort_closes_both_and_calls_back_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        rig = Rig()
        rig.pipe.start()
        fds = rig.a.fileno(), rig.b.fileno()
        await loop.sock_sendall(rig.A, b"x")
        assert await read_exactly(rig.B, 1) == b"x"
        rig.pipe.abort()
        assert rig.pipe.closed and rig.closes == 1
        assert rig.a.fileno() == -1 and rig.b.fileno() == -1
        assert all(registered(loop, fd) == (False, False) for fd in fds)
        assert await read_all(rig.A) == b"" and await read_all(rig.B) == b""
        rig.pipe.abort()
        assert rig.closes == 1
        rig.close()

    run(main())


def test_a_reset_on_one_side_aborts_the_pipe() -> None:
    async def main() -> None:
        rig = Rig(buf=4096)
        rig.pipe.start()
        assert fill(rig.A, pattern(100_000, 5)) > 0
        await asyncio.sleep(0.01)  # the bytes pile up towards B, which reads nothing
        rig.B.close()  # with unread bytes: the pipe's b is reset
        await asyncio.wait_for(rig.closed.wait(), 1.0)
        assert rig.a.fileno() == -1
        # A sees the end: a FIN, or a reset if the pipe left some of its bytes unread.
        with contextlib.suppress(ConnectionResetError):
            assert await read_all(rig.A) == b""
        rig.A.close()

    run(main())


def test_tls_source_with_bytes_read_ahead(pki: Pki) -> None:
    """As the gateway does: read a line on a TLS Conn, detach, pipe the rest to plain TCP."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        client, server = tls_pair(pki)
        await asyncio.gather(client.handshake(), server.handshake())
        body = pattern(1_000_000, 6)
        client.write(b"OPEN dev1/ssh\n" + body[:1000])
        assert await server.read_until(b"\n", 100) == b"OPEN dev1/ssh\n"
        early = bytes(server.rbuf)  # decrypted already: the pipe must pass it on first
        tls_sock = server.detach()
        plain, B = socket.socketpair()
        B.setblocking(False)
        closed = asyncio.Event()
        counter = [0, 0]
        Pipe(tls_sock, plain, counter=counter, on_close=closed.set).start(a_to_b=early)
        client.write(body[1000:])
        assert await asyncio.wait_for(read_exactly(B, len(body)), 3.0) == body
        await loop.sock_sendall(B, b"reply")
        assert await client.read_until(b"reply", 100) == b"reply"
        B.shutdown(socket.SHUT_WR)
        assert await client.recv_some() == b""  # the half-close reaches the TLS client
        conn_b = Conn(B)
        client.close()  # and the TLS side ending closes the pipe
        await asyncio.wait_for(closed.wait(), 1.0)
        assert await conn_b.recv_some() == b""
        conn_b.close()
        assert counter[0] == len(body) - len(early)

    run(main())
