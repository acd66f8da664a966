"""Raw TCP ports: each port serves exactly the device service the inventory gives it, always.

The inventory is ``[tcp.pinned]`` in gateway.toml (``"dev2/ssh" = 22002``): the same file on
both nodes, so a port means the same service on either node, before and after a failover and
across restarts, with no shared database. Agents cannot ask for a port (a device that could
would squat another's), and nothing is derived at run time. A port is listened on only while
the access policy opens that TCP route to someone (``public`` or an IP allow-list); the
listener stays up while its device is offline (a user's connection is then closed at once),
so another device can never take it over. Everything else is reached with `hagate connect`
and a user certificate.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING

from hagate.gateway.admission import Handler
from hagate.gateway.protocol import ServiceKind
from hagate.gateway.session import StreamError
from hagate.net.conn import Conn, set_nodelay
from hagate.policy import ANONYMOUS, RouteKind

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.gateway")


class TcpFront:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.routes: dict[int, tuple[str, str]] = {
            port: _split(key) for key, port in gw.cfg.tcp_pinned.items()
        }
        self.socks: dict[int, socket.socket] = {}

    def port_of(self, device: str, service: str) -> int | None:
        return self.gw.cfg.tcp_pinned.get(f"{device}/{service}")

    def sync(self) -> None:
        """Listen on exactly the inventory ports that the policy opens (start and reloads)."""
        policy = self.gw.policy
        wanted = {p for p, (d, s) in self.routes.items() if policy.tcp_public(d, s)}
        for port in list(self.socks):
            if port not in wanted:
                self._close(port)
        for port in sorted(wanted - set(self.socks)):
            device, service = self.routes[port]
            try:
                lsock = self.gw.backend.listen(self.gw.cfg.tcp_host, port, backlog=128)
            except OSError as exc:
                log.error("tcp %s/%s: cannot listen on port %d: %s", device, service, port, exc)
                continue
            self.socks[port] = lsock
            self.gw.acceptor.watch(lsock, self._handler(port))
            log.info("tcp port %d serves %s/%s", port, device, service)

    def close_all(self) -> None:
        for port in list(self.socks):
            self._close(port)

    def _close(self, port: int) -> None:
        lsock = self.socks.pop(port)
        self.gw.acceptor.unwatch(lsock)
        with contextlib.suppress(OSError):
            lsock.close()

    def _handler(self, port: int) -> Handler:
        device, service = self.routes[port]
        gw = self.gw

        async def handle(sock: socket.socket, client: tuple[str, int]) -> None:
            set_nodelay(sock)
            user = Conn(sock)
            try:
                lease = gw.authorize_stream(
                    ANONYMOUS, device, service, RouteKind.TCP, client[0], ServiceKind.TCP
                )
                try:
                    data = await gw.open_upstream(device, service, ServiceKind.TCP)
                except BaseException:
                    lease.end("error")
                    raise
            except StreamError as exc:
                log.info("tcp %s/%s refused: %s", device, service, exc.message)
                user.close()
                return
            gw.pipe(lease, user, data)

        return handle


def _split(key: str) -> tuple[str, str]:
    device, _, service = key.partition("/")
    return device, service
