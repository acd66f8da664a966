"""The HTTP front on a real gateway: agents over TLS, device web services, loopback only.

The front listens on a port of its own here (``front_on_loopback``), with the real Gateway as
its hub, so these tests do not depend on which listener server.py wires it to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from hagate.gateway.http_front import HttpFront
from hagate.gateway.server import Gateway
from hagate.net.conn import Conn, listen_socket, set_nodelay
from hagate.policy import RouteKind

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    gateway_config,
    http_service,
    running_agent,
    running_gateway,
)


@contextlib.asynccontextmanager
async def front_on_loopback(gw: Gateway, accepted: list[int] | None = None) -> AsyncIterator[int]:
    """An HTTP listener on 127.0.0.1 served by an HttpFront over ``gw``; yields its port.
    ``accepted[0]`` counts the connections it accepted."""
    lsock = listen_socket("127.0.0.1", 0)
    port = int(lsock.getsockname()[1])
    front = HttpFront(gw, RouteKind.HTTP, port, DOMAIN)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    count = accepted if accepted is not None else [0]

    async def accept() -> None:
        while True:
            sock, addr = await loop.sock_accept(lsock)
            count[0] += 1
            set_nodelay(sock)
            task = asyncio.create_task(front.serve(Conn(sock), addr, None, None))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = asyncio.create_task(accept())
    try:
        yield port
    finally:
        acceptor.cancel()
        for task in list(tasks):
            task.cancel()
        front.close()
        lsock.close()


@contextlib.asynccontextmanager
async def two_devices(
    pki: Pki, accepted: list[int] | None = None
) -> AsyncIterator[tuple[Gateway, int]]:
    """A gateway, dev1 and dev2 each with a web service saying its name; the front's port."""
    web1, port1 = await http_service("dev1")
    web2, port2 = await http_service("dev2")
    async with running_gateway(gateway_config(pki)) as gw:
        tport = gw.addresses["tunnel"][1]
        async with (
            running_agent(agent_config(pki, "dev1", tport, http=port1)),
            running_agent(agent_config(pki, "dev2", tport, http=port2)),
            front_on_loopback(gw, accepted) as port,
        ):
            yield gw, port
    web1.close()
    web2.close()


def read_one(sock: socket.socket, buf: bytearray) -> bytes:
    """One response with Content-Length from a blocking socket (rest stays in ``buf``)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"closed after {bytes(buf)!r}"
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end]).lower()
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buf) < end + length:
        data = sock.recv(65536)
        assert data
        buf += data
    body = bytes(buf[end : end + length])
    del buf[: end + length]
    return body


def test_mixed_hosts_on_one_connection_through_real_agents(pki: Pki) -> None:
    async def main() -> None:
        async with two_devices(pki) as (gw, port):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            order = ["dev1", "dev2", "dev2", "dev1", "dev2", "dev1"]
            for i, dev in enumerate(order):
                w.write(f"GET /{i} HTTP/1.1\r\nHost: {dev}.{DOMAIN}\r\n\r\n".encode())
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await r.readexactly(n)
                assert body == f"hello from {dev} /{i}".encode()
            # Pipelined, mixed: each answered in order, by its own device.
            w.write(
                b"".join(
                    f"GET /p{i} HTTP/1.1\r\nHost: {dev}.{DOMAIN}\r\n\r\n".encode()
                    for i, dev in enumerate(order)
                )
            )
            for i, dev in enumerate(order):
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                assert await r.readexactly(n) == f"hello from {dev} /p{i}".encode()
            w.close()
            assert len(gw.streams) == 0  # every request's lease ended

    asyncio.run(asyncio.wait_for(main(), 30))
