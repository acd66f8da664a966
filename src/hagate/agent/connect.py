"""`hagate connect DEVICE:SERVICE --local PORT`: a local port that reaches one device service.

Each local connection becomes one TLS connection to the gateway's tunnel port, authenticated
with the user's certificate; the gateway asks the device's agent for a stream and pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable

from hagate.agent.agent import dial, next_event
from hagate.agent.config import ClientConfig
from hagate.net.conn import Conn, ProtocolError, listen_socket, set_nodelay
from hagate.net.pipe import Pipe
from hagate.net.tls import client_context
from hagate.tunnel import wire
from hagate.tunnel.connection import Kind, ProtocolViolation, Role, TunnelConnection

log = logging.getLogger("hagate.connect")


class ConnectError(Exception):
    """The gateway could not give us the stream (message says why)."""


async def open_stream(client: ClientConfig, ctx: ssl.SSLContext, device: str, service: str) -> Conn:
    """A TLS connection to the gateway that now carries ``device``'s ``service``.

    Bytes the gateway sent after its answer are left in ``conn.rbuf`` for the caller's pipe.
    """
    conn = await dial(client, ctx)
    tc = TunnelConnection(Role.AGENT, Kind.CONNECT)
    try:
        conn.write(tc.send(wire.Connect(device, service), conn.loop.time()))
        event = await asyncio.wait_for(next_event(conn, tc), 15.0)
    except (EOFError, OSError, ProtocolError, TimeoutError) as exc:
        conn.close()
        raise ConnectError(f"gateway closed the connection ({exc or 'refused'})") from None
    if isinstance(event, wire.StreamReady):
        conn.rbuf += tc.trailing_data
        return conn
    conn.close()
    if isinstance(event, (wire.StreamRefused, wire.Refused)):
        raise ConnectError(event.error)
    if isinstance(event, ProtocolViolation):
        raise ConnectError(f"gateway sent garbage ({event.reason})")
    raise ConnectError("gateway closed the connection (refused)")


class Forwarder:
    """Listen on a local port; forward each connection to one device service."""

    def __init__(
        self,
        client: ClientConfig,
        device: str,
        service: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.ctx = client_context(client.cert, client.key, client.ca)
        self.device = device
        self.service = service
        self.lsock = listen_socket(host, port, backlog=128)
        self.address: tuple[str, int] = self.lsock.getsockname()[:2]
        self.on_error = on_error or (lambda msg: log.error("%s", msg))
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def on_accept() -> None:
            while True:
                try:
                    sock, _ = self.lsock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    self.on_error(f"accept: {exc}")
                    return
                task = asyncio.create_task(self._handle(sock))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        loop.add_reader(self.lsock.fileno(), on_accept)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.lsock.fileno())
        self.lsock.close()

    async def _handle(self, local: socket.socket) -> None:
        local.setblocking(False)
        set_nodelay(local)
        try:
            remote = await open_stream(self.client, self.ctx, self.device, self.service)
        except (ConnectError, OSError, TimeoutError, ssl.SSLError) as exc:
            self.on_error(f"{self.device}:{self.service}: {exc}")
            local.close()
            return
        rest = bytes(remote.rbuf)
        Pipe(local, remote.detach()).start(b"", rest)


async def run_stdio(client: ClientConfig, device: str, service: str) -> int:
    """One stream between stdin/stdout and the device service (for ssh's ProxyCommand)."""
    ctx = client_context(client.cert, client.key, client.ca)
    remote = await open_stream(client, ctx, device, service)
    # stdin/stdout may be pipes or a tty: two threads move bytes between them and one end of
    # a socket pair, whose other end is piped to the gateway like any local connection.
    near, far = socket.socketpair()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def closed() -> None:
        if not done.done():
            done.set_result(None)

    rest = bytes(remote.rbuf)
    Pipe(far, remote.detach(), on_close=closed).start(b"", rest)

    def stdin_to_socket() -> None:
        with contextlib.suppress(OSError):
            while data := os.read(0, 65536):
                near.sendall(data)
            near.shutdown(socket.SHUT_WR)

    def socket_to_stdout() -> None:
        with contextlib.suppress(OSError):
            while data := near.recv(65536):
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view) :]

    threading.Thread(target=stdin_to_socket, daemon=True).start()
    await asyncio.gather(asyncio.to_thread(socket_to_stdout), done)
    near.close()
    return 0
