"""Conn: buffered reads with limits, never-blocking writes, close and detach, TLS handshakes."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from hagate.net.conn import Conn, ProtocolError
from hagate.net.tls import tunnel_server_context

from .conftest import Pki, pattern, read_all, read_exactly, registered, run, small_pair, tls_pair

# ------------------------------------------------------------------ read_until


def test_read_until_returns_each_message_and_keeps_the_rest() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        b.send(b"hello\nworld\npartial")
        assert await conn.read_until(b"\n", 100) == b"hello\n"
        assert await conn.read_until(b"\n", 100) == b"world\n"
        assert conn.rbuf == b"partial"
        b.send(b" line\n")
        assert await conn.read_until(b"\n", 100) == b"partial line\n"
        assert conn.rbuf == b""
        conn.close()
        b.close()

    run(main())


def test_read_until_finds_a_separator_split_across_reads() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        task = asyncio.ensure_future(conn.read_until(b"\r\n\r\n", 1000))
        for byte in head + b"body":  # one byte per read: every split of the separator
            b.send(bytes([byte]))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert await task == head
        assert conn.rbuf == b"body"[: len(conn.rbuf)]
        # A separator that starts in one read and ends in the next, after a false start.
        task = asyncio.ensure_future(conn.read_until(b"\r\n\r\n", 1000))
        b.send(b"\r\n\r")
        await asyncio.sleep(0.01)
        assert not task.done()
        b.send(b"\n")
        assert await task == b"body\r\n\r\n"  # the bytes left over from before came first
        conn.close()
        b.close()

    run(main())


def test_read_until_limits() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        b.send(b"x" * 9 + b"\n")
        assert await conn.read_until(b"\n", 10) == b"x" * 9 + b"\n"  # exactly the limit
        b.send(b"x" * 10 + b"\n")
        with pytest.raises(ProtocolError, match="more than 10 bytes"):
            await conn.read_until(b"\n", 10)  # the separator came, but past the limit
        conn.close()
        b.close()

        a, b = socket.socketpair()
        conn = Conn(a)
        b.send(b"y" * 11)  # no separator and already over: an error now, not a wait
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(conn.read_until(b"\n", 10), 1.0)
        conn.close()
        b.close()

    run(main())


def test_read_until_eof_and_reset() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        b.send(b"no newline")
        b.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            await conn.read_until(b"\n", 100)
        assert conn.rbuf == b"no newline"  # nothing lost: the caller may look
        conn.close()
        b.close()

        a, b = socket.socketpair()
        conn = Conn(a)
        a.send(b"unread")  # b closes with unread bytes: Linux resets a
        b.close()
        with pytest.raises(ConnectionResetError):
            await conn.read_until(b"\n", 100)
        conn.close()

    run(main())


def test_read_until_on_a_closed_conn() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        conn.close()
        with pytest.raises(ConnectionResetError):
            await conn.read_until(b"\n", 100)
        b.close()

    run(main())


# ------------------------------------------------------------------ recv_some


def test_recv_some_buffer_first_then_socket_then_eof() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        b.send(b"line\nextra")
        await conn.read_until(b"\n", 100)
        assert await conn.recv_some() == b"extra"  # what read_until left behind
        task = asyncio.ensure_future(conn.recv_some())
        await asyncio.sleep(0.01)
        assert not task.done()  # waits for the socket
        b.send(b"more")
        assert await task == b"more"
        b.send(b"0123456789")
        assert await conn.recv_some(4) == b"0123"
        assert await conn.recv_some() == b"456789"
        b.shutdown(socket.SHUT_WR)
        assert await conn.recv_some() == b""
        conn.close()
        b.close()

    run(main())


def test_recv_nowait_reads_what_is_there_and_never_waits(pki: Pki) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        assert conn.recv_nowait() is None  # nothing yet: no wait, no reader registered
        assert registered(conn.loop, a.fileno()) == (False, False)
        b.send(b"line\nextra")
        assert await conn.read_until(b"\n", 100) == b"line\n"
        assert conn.recv_nowait() == b"extra"  # the buffer first
        b.send(b"next request")
        await asyncio.sleep(0.01)
        assert conn.recv_nowait() == b"next request"
        b.shutdown(socket.SHUT_WR)
        assert conn.recv_nowait() == b""  # end of stream, as recv_some says it
        conn.close()
        with pytest.raises(ConnectionResetError):
            conn.recv_nowait()
        b.close()
        # TLS: a record that has arrived is decrypted; none there is None, not an error.
        client, server = tls_pair(pki)
        await asyncio.gather(client.handshake(), server.handshake())
        assert server.recv_nowait() is None
        client.write(b"GET / HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.01)
        assert server.recv_nowait() == b"GET / HTTP/1.1\r\n\r\n"
        assert server.recv_nowait() is None
        client.close()
        server.close()

    run(main())


def test_idle_reader_stops_watching_rather_than_spinning() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        conn = Conn(a)
        task = asyncio.ensure_future(conn.recv_some())
        await asyncio.sleep(0)  # the socket is empty: it waits, registered
        b.send(b"1")
        assert await task == b"1"
        assert registered(loop, conn.fd) == (True, False)  # kept between reads: no epoll_ctl
        b.send(b"2")  # nobody is reading now
        await asyncio.sleep(0.01)
        assert registered(loop, conn.fd) == (False, False)
        assert await conn.recv_some() == b"2"  # and reading again re-registers
        conn.close()
        b.close()

    run(main())


def test_recv_some_wait_first_reads_once_after_readiness() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        task = asyncio.ensure_future(conn.recv_some(wait=True))
        await asyncio.sleep(0.01)
        assert not task.done()
        b.send(b"answer")
        assert await task == b"answer"
        conn.rbuf += b"kept"  # what a previous read left: no wait at all
        assert await conn.recv_some(wait=True) == b"kept"
        conn.close()
        with pytest.raises(ConnectionResetError):
            await conn.recv_some(wait=True)
        b.close()

    run(main())


def test_idle_connection_turns_stale_when_its_peer_closes() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        task = asyncio.ensure_future(conn.recv_some())
        await asyncio.sleep(0)
        b.send(b"last answer")
        # The read that ends an exchange leaves a readiness report behind (the loop saw the
        # socket readable again before the reader ran); idle() right after it is not fooled.
        assert await task == b"last answer"
        conn.idle()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not conn.stale  # a quiet peer: reusable, and still watched
        b.close()  # the device closes its idle connection
        for _ in range(5):
            await asyncio.sleep(0)
        assert conn.stale
        conn.idle()  # idle() again (a pool taking it back) starts afresh, watching again
        assert not conn.stale
        await asyncio.sleep(0.01)
        assert conn.stale  # still at end of stream
        conn.close()

    run(main())


# ----------------------------------------------------------------------- write


def test_write_sends_at_once_when_the_socket_takes_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        conn = Conn(a)
        conn.write(b"small")
        assert conn.wbuf == b""
        assert registered(loop, conn.fd) == (False, False)
        await conn.drain()  # nothing buffered: returns at once
        assert await read_exactly(b, 5) == b"small"
        conn.close()
        b.close()

    run(main())


def test_partial_sends_are_buffered_flushed_in_order_and_drained() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = small_pair()
        conn = Conn(a)
        first, second = pattern(200_000, 1), pattern(100_000, 2)
        conn.write(first)
        assert 0 < len(conn.wbuf) < len(first)  # the kernel took part of it
        assert registered(loop, conn.fd)[1]
        conn.write(second)  # appended behind, never sent ahead of the buffer
        assert len(conn.wbuf) > len(second)
        reader = asyncio.ensure_future(read_exactly(b, len(first) + len(second)))
        await asyncio.wait_for(conn.drain(), 2.0)
        assert conn.wbuf == b""
        assert registered(loop, conn.fd) == (False, False)  # writer removed once flushed
        assert await reader == first + second
        conn.close()
        b.close()

    run(main())


def test_write_to_a_dead_peer_closes_and_later_writes_are_ignored() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        conn = Conn(a)
        b.close()
        conn.write(b"x")  # EPIPE: closed, no exception for the caller
        assert conn.closed
        conn.write(b"y")
        await conn.drain()

        a, b = small_pair()
        conn = Conn(a)
        conn.write(pattern(100_000))
        assert conn.wbuf
        drained = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0)
        b.close()  # the flush now fails: the drain waiter hears of it
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(drained, 1.0)
        assert conn.closed

    run(main())


# ----------------------------------------------------------------- close, detach


def test_close_wakes_every_waiter_and_unregisters_the_fd() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = small_pair()
        conn = Conn(a)
        fd = conn.fd
        conn.write(pattern(100_000))
        reader = asyncio.ensure_future(conn.read_until(b"\n", 100))
        other = asyncio.ensure_future(conn.recv_some())
        drainer = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0.01)
        assert not (reader.done() or other.done() or drainer.done())
        assert registered(loop, fd) == (True, True)
        conn.close()
        for task in (reader, other, drainer):
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(task, 1.0)
        assert registered(loop, fd) == (False, False)
        assert a.fileno() == -1
        assert conn._waiters == []
        conn.close()  # twice is harmless
        b.close()

    run(main())


def test_close_wakes_a_handshake_waiting_to_read() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = Conn(ctx.wrap_socket(a, do_handshake_on_connect=False))
        task = asyncio.ensure_future(conn.handshake())
        await asyncio.sleep(0.01)  # ClientHello sent; waiting for a ServerHello that never comes
        assert not task.done()
        conn.close()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(task, 1.0)
        b.close()

    run(main())


def test_detach_hands_over_an_open_socket_with_the_buffer_left() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        conn = Conn(a)
        task = asyncio.ensure_future(conn.read_until(b"\n", 100))
        await asyncio.sleep(0)
        b.send(b"head\nbody")
        assert await task == b"head\n"
        sock = conn.detach()
        assert sock is a and sock.fileno() >= 0
        assert registered(loop, conn.fd) == (False, False)
        assert conn.closed and conn.rbuf == b"body"  # the new owner passes these on first
        b.send(b" more")
        await asyncio.sleep(0.01)
        assert sock.recv(100) == b" more"  # and nobody else reads the socket now
        conn.write(b"ignored")  # a detached Conn writes nothing
        sock.close()
        assert await read_all(b) == b""
        b.close()

    run(main())


# -------------------------------------------------------------------------- TLS


class CountingBudget:
    """Counts handshake steps; ``hold`` makes each step wait for the test."""

    def __init__(self) -> None:
        self.steps = 0
        self.hold: asyncio.Event | None = None

    async def acquire(self) -> None:
        self.steps += 1
        if self.hold is not None:
            await self.hold.wait()


def test_tls_handshake_with_a_budget_then_messages_and_bulk(pki: Pki) -> None:
    async def main() -> None:
        client, server = tls_pair(pki)
        assert client.tls and server.tls
        budget = CountingBudget()
        await asyncio.gather(client.handshake(), server.handshake(budget))
        assert budget.steps >= 2  # one per step: the handshake waited for the client between
        assert isinstance(server.sock, ssl.SSLSocket)
        peer = server.sock.getpeercert()
        assert peer is not None and ("commonName", "dev1") in [x[0] for x in peer["subject"]]
        client.write(b'{"op":"hello"}\n')
        assert await server.read_until(b"\n", 1000) == b'{"op":"hello"}\n'
        bulk = pattern(1_000_000, 3).replace(b"\n", b"") + b"\n"
        server.write(bulk)  # more than the socket takes: SSLWantWrite, buffered, retried
        assert server.wbuf
        got, _ = await asyncio.gather(client.read_until(b"\n", len(bulk)), server.drain())
        assert got == bulk
        client.close()
        server.close()

    run(main())


def test_tls_handshake_paced_by_the_budget(pki: Pki) -> None:
    async def main() -> None:
        client, server = tls_pair(pki)
        budget = CountingBudget()
        budget.hold = asyncio.Event()
        done = asyncio.ensure_future(asyncio.gather(client.handshake(), server.handshake(budget)))
        await asyncio.sleep(0.05)
        assert not done.done() and budget.steps == 1  # no step without the budget's turn
        budget.hold.set()
        await asyncio.wait_for(done, 2.0)
        client.close()
        server.close()

    run(main())


def test_tls_handshake_failures(pki: Pki) -> None:
    async def main() -> None:
        # A client that trusts another CA: an SSLError on both sides, not a hang.
        srv = pki.bundle("server", "gateway")
        server_ctx = tunnel_server_context(srv / "cert.pem", srv / "key.pem", pki.ca)
        stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
        a, b = socket.socketpair()
        client = Conn(
            stranger.wrap_socket(a, server_hostname="localhost", do_handshake_on_connect=False)
        )
        server = Conn(server_ctx.wrap_socket(b, server_side=True, do_handshake_on_connect=False))
        results = await asyncio.wait_for(
            asyncio.gather(client.handshake(), server.handshake(), return_exceptions=True), 2.0
        )
        assert isinstance(results[0], ssl.SSLCertVerificationError)
        assert isinstance(results[1], (ssl.SSLError, OSError, EOFError))
        client.close()
        server.close()

        # A peer that says nothing: the handshake waits; the caller's timeout ends it.
        a, b = socket.socketpair()
        server = Conn(server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server.handshake(), 0.05)
        server.close()
        b.close()

    run(main())
