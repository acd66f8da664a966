"""MemoryBackend: TCP's addressing and failures on AF_UNIX fds, no network; KernelBackend."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

import pytest

from hagate.gateway.admission import Acceptor
from hagate.net.backend import KERNEL, Backend, Fault, KernelBackend, MemoryBackend
from hagate.net.conn import Conn
from hagate.net.pipe import Pipe
from hagate.net.tls import client_context, tunnel_server_context

from .conftest import Pki, address, pattern, read_exactly, run


def test_listen_connect_accept_name_both_ends_as_tcp() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        lsock = mem.listen("127.0.0.1", 0)
        host, port = lsock.getsockname()
        assert host == "127.0.0.1" and 32768 <= port <= 65535
        assert lsock.family == socket.AF_UNIX  # a real fd, no TCP port taken
        client = await mem.connect("127.0.0.1", port, 1.0)
        server, addr = lsock.accept()
        assert addr == client.getsockname()
        assert addr[0] == "127.0.0.1" and addr[1] != port
        assert client.getpeername() == ("127.0.0.1", port)
        assert server.getsockname() == ("127.0.0.1", port)
        assert server.getpeername() == addr
        assert not client.getblocking()
        client.send(b"ping")
        assert await read_exactly(server, 4) == b"ping"
        server.send(b"pong")
        assert await read_exactly(client, 4) == b"pong"
        for s in (client, server, lsock):
            s.close()

    run(main())


def test_address_in_use_refused_and_freed() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        lsock = mem.listen("10.1.1.100", 443)
        assert lsock.getsockname() == ("10.1.1.100", 443)
        with pytest.raises(OSError) as info:
            mem.listen("10.1.1.100", 443)
        assert info.value.errno == errno.EADDRINUSE
        with pytest.raises(ConnectionRefusedError):
            await mem.connect("10.1.1.100", 444, 1.0)
        with pytest.raises(ConnectionRefusedError):
            await mem.connect("10.1.1.101", 443, 1.0)
        lsock.close()
        with pytest.raises(ConnectionRefusedError):  # an answer at once, not a timeout
            await mem.connect("10.1.1.100", 443, 1.0)
        mem.listen("10.1.1.100", 443).close()  # the address is free again

    run(main())


def test_wildcard_listener_takes_its_family_and_localhost() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        v4 = mem.listen("0.0.0.0", 8080)
        v6 = mem.listen("::", 8080)
        for host, lsock in (("127.0.0.1", v4), ("10.0.0.7", v4), ("localhost", v4), ("::1", v6)):
            client = await mem.connect(host, 8080, 1.0)
            server, _ = lsock.accept()
            client.close()
            server.close()
        v4.close()
        v6.close()

    run(main())


def test_networks_are_isolated_and_sources_are_reported() -> None:
    async def main() -> None:
        one, two = MemoryBackend(), MemoryBackend()
        a = one.listen("127.0.0.1", 9000)
        b = two.listen("127.0.0.1", 9000)  # same (host, port) in another network: no clash
        device = one.from_source("10.9.8.7")
        client = await device.connect("127.0.0.1", 9000, 1.0)
        _, addr = a.accept()
        assert addr[0] == "10.9.8.7"
        with pytest.raises(BlockingIOError):
            b.accept()  # nothing crossed over
        assert one.attempts[("127.0.0.1", 9000)] == 1  # views share one network
        assert two.attempts[("127.0.0.1", 9000)] == 0
        for s in (a, b, client):
            s.close()

    run(main())


def test_acceptor_serves_a_memory_listener() -> None:
    """The gateway's own accept loop (add_reader + accept) works on it unchanged."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mem = MemoryBackend().from_source("192.0.2.1")
        lsock = mem.listen("127.0.0.1", 0)
        seen: list[tuple[str, int]] = []
        tasks: list[asyncio.Task[None]] = []

        async def handler(sock: socket.socket, client: tuple[str, int]) -> None:
            seen.append(client)
            conn = Conn(sock)
            line = await conn.read_until(b"\n", 100)
            conn.write(b"echo " + line)
            await conn.drain()
            conn.close()

        def spawn(coro: Coroutine[Any, Any, None]) -> None:
            tasks.append(asyncio.ensure_future(coro))

        acceptor = Acceptor(loop, spawn)
        acceptor.watch(lsock, handler)
        replies = []
        for i in range(5):
            conn = Conn(await mem.connect(*address(lsock), 1.0))
            conn.write(b"%d\n" % i)
            replies.append(await conn.read_until(b"\n", 100))
            conn.close()
        assert replies == [b"echo %d\n" % i for i in range(5)]
        assert [c[0] for c in seen] == ["192.0.2.1"] * 5
        assert len({c[1] for c in seen}) == 5  # a fresh source port each time
        await asyncio.gather(*tasks)
        acceptor.unwatch(lsock)
        lsock.close()

    run(main())


def test_full_backlog_is_silence_until_accepted() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        lsock = mem.listen("127.0.0.1", 0, backlog=1)
        addr = address(lsock)
        queued = [await mem.connect(*addr, 1.0) for _ in range(2)]  # Linux queues backlog + 1
        third = asyncio.ensure_future(mem.connect(*addr, 1.0))
        await asyncio.sleep(0.05)
        assert not third.done()
        server, _ = lsock.accept()
        client = await asyncio.wait_for(third, 0.5)
        with pytest.raises(ConnectionError, match="timed out"):
            await mem.connect(*addr, 0.05)
        for s in (*queued, client, server, lsock):
            s.close()

    run(main())


def test_fault_refuse_even_with_a_listener() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        lsock = mem.listen("127.0.0.1", 7000)
        mem.fault("127.0.0.1", 7000, Fault.REFUSE)
        with pytest.raises(ConnectionRefusedError):
            await mem.connect("127.0.0.1", 7000, 1.0)
        mem.heal("127.0.0.1", 7000)
        (await mem.connect("127.0.0.1", 7000, 1.0)).close()
        assert mem.attempts[("127.0.0.1", 7000)] == 2
        lsock.close()

    run(main())


def test_fault_silent_times_out_or_connects_when_healed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        mem = MemoryBackend()
        lsock = mem.listen("10.1.1.100", 7000)
        mem.fault("10.1.1.100", 7000, Fault.SILENT)  # no node answers for the VIP
        t0 = loop.time()
        with pytest.raises(ConnectionError, match="timed out"):
            await mem.connect("10.1.1.100", 7000, 0.1)
        assert 0.09 <= loop.time() - t0 < 0.5
        waiting = asyncio.ensure_future(mem.connect_staggered("10.1.1.100", 7000, 2.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        t0 = loop.time()
        mem.heal("10.1.1.100", 7000)  # the new master's gratuitous ARP
        client = await asyncio.wait_for(waiting, 0.5)
        assert loop.time() - t0 < 0.05
        server, _ = lsock.accept()
        for s in (client, server, lsock):
            s.close()

    run(main())


def test_silent_turning_into_refused_answers_the_waiting_connect() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        mem.fault("10.1.1.100", 7000, Fault.SILENT)
        waiting = asyncio.ensure_future(mem.connect("10.1.1.100", 7000, 2.0))
        await asyncio.sleep(0.02)
        mem.fault("10.1.1.100", 7000, Fault.REFUSE)  # the new holder has no such listener
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(waiting, 0.1)

    run(main())


def test_one_backend_serves_several_event_loops() -> None:
    mem = MemoryBackend()
    mem.fault("127.0.0.1", 7000, Fault.SILENT)

    async def timed_out() -> None:
        with pytest.raises(ConnectionError, match="timed out"):
            await mem.connect("127.0.0.1", 7000, 0.01)

    async def healed() -> None:
        lsock = mem.listen("127.0.0.1", 7000)
        waiting = asyncio.ensure_future(mem.connect("127.0.0.1", 7000, 1.0))
        await asyncio.sleep(0.01)
        mem.heal("127.0.0.1", 7000)
        (await waiting).close()
        lsock.close()

    run(timed_out())
    run(healed())  # a fresh loop: nothing left bound to the first one


def test_fault_blackhole_connects_but_never_answers() -> None:
    async def main() -> None:
        mem = MemoryBackend()
        lsock = mem.listen("127.0.0.1", 7000)
        mem.fault("127.0.0.1", 7000, Fault.BLACKHOLE)  # also works with nobody listening
        conn = Conn(await mem.connect("127.0.0.1", 7000, 1.0))
        conn.write(pattern(1 << 20))
        assert conn.wbuf  # the far end takes a kernel buffer's worth, then nothing
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.recv_some(), 0.1)
        with pytest.raises(BlockingIOError):
            lsock.accept()  # the listener never heard of it
        mem.close()  # the far ends go away: the client is reset
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(conn.recv_some(), 1.0)
        conn.close()
        lsock.close()

    run(main())


def test_fault_reset_resets_the_first_read() -> None:
    async def main() -> None:
        with MemoryBackend() as mem:
            mem.fault("127.0.0.1", 7000, Fault.RESET)
            conn = Conn(await mem.connect("127.0.0.1", 7000, 1.0))
            with pytest.raises(ConnectionResetError):
                await conn.read_until(b"\n", 100)
            conn.close()
            plain = await mem.connect("127.0.0.1", 7000, 1.0)
            with pytest.raises(BrokenPipeError):
                plain.send(b"x")
            plain.close()

    run(main())


def test_tls_and_pipe_run_over_memory_sockets(pki: Pki) -> None:
    """A TLS client through a Pipe to a TLS server, every socket from the backend."""

    async def main() -> None:
        mem = MemoryBackend()
        srv = pki.bundle("server", "gateway")
        dev = pki.bundle("device", "dev1")
        server_ctx = tunnel_server_context(srv / "cert.pem", srv / "key.pem", pki.ca)
        client_ctx = client_context(dev / "cert.pem", dev / "key.pem", pki.ca)
        front = mem.listen("127.0.0.1", 0)  # a relay in front of the server
        back = mem.listen("127.0.0.1", 0)

        client_sock = await mem.connect(*address(front), 1.0)
        relay_in, _ = front.accept()
        relay_out = await mem.connect(*address(back), 1.0)
        server_sock, _ = back.accept()
        counter = [0, 0]
        closed = asyncio.Event()
        Pipe(relay_in, relay_out, counter=counter, on_close=closed.set).start()

        wrapped = client_ctx.wrap_socket(
            client_sock, server_hostname="localhost", do_handshake_on_connect=False
        )
        client = Conn(wrapped)
        server = Conn(
            server_ctx.wrap_socket(server_sock, server_side=True, do_handshake_on_connect=False)
        )
        await asyncio.gather(client.handshake(), server.handshake())
        assert isinstance(server.sock, ssl.SSLSocket)
        assert server.sock.getpeercert() is not None
        payload = pattern(300_000).replace(b"\n", b"")
        client.write(payload + b"\n")
        got = await server.read_until(b"\n", len(payload) + 1)
        assert got[:-1] == payload
        client.close()
        server.close()
        await asyncio.wait_for(closed.wait(), 1.0)
        assert counter[0] > len(payload)  # ciphertext passed the relay
        front.close()
        back.close()

    run(main())


def test_kernel_backend_is_tcp_on_loopback() -> None:
    async def main() -> None:
        backend: Backend = KERNEL
        assert isinstance(KERNEL, KernelBackend)
        lsock = backend.listen("127.0.0.1", 0, backlog=8)
        addr = address(lsock)
        client = await backend.connect(*addr, 1.0)
        server, _ = lsock.accept()
        assert client.family == socket.AF_INET
        client.send(b"x")
        assert await read_exactly(server, 1) == b"x"
        again = await backend.connect_staggered(*addr, 1.0)
        again.close()
        for s in (client, server, lsock):
            s.close()
        with pytest.raises(ConnectionError):
            await backend.connect(*addr, 1.0)

    run(main())


def test_memory_backend_satisfies_the_protocol() -> None:
    backend: Backend = MemoryBackend()  # mypy checks this line; at run time, the methods exist
    assert callable(backend.connect_staggered)
