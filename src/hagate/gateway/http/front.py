"""The front of one HTTP(S) listener: what its connections share (routes, upstream pool,
timeouts, counts of its own answers), and ``serve()`` for each accepted connection."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from hagate.gateway.http.clientip import Networks
from hagate.gateway.http.connection import UserConn
from hagate.gateway.http.deadline import Deadline
from hagate.gateway.http.host import Routes
from hagate.gateway.http.hub import Hub
from hagate.gateway.http.pool import UpstreamPool
from hagate.net.conn import Conn
from hagate.net.tls import Identity
from hagate.policy.model import RouteKind

log = logging.getLogger("hagate.gateway.http")


class HttpFront:
    """One per HTTP(S) listener. ``await serve(conn, client, sni, cert)`` per connection."""

    def __init__(
        self,
        hub: Hub,
        route_kind: RouteKind,
        listen_port: int,
        domain: str,
        header_bytes: int = 16384,
        head_timeout: float = 10.0,
        *,
        idle_timeout: float = 60.0,
        io_timeout: float = 60.0,
        pool: UpstreamPool | None = None,
        trusted_proxies: Networks = (),
    ) -> None:
        self.hub = hub
        self.route_kind = route_kind
        self.routes = Routes(listen_port, domain)
        self.listen_port = listen_port
        self.domain = self.routes.domain
        self.header_bytes = header_bytes
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.io_timeout = io_timeout
        self.pool = pool if pool is not None else UpstreamPool()
        self.proto = "https" if route_kind is RouteKind.HTTPS else "http"
        self.responses: Counter[int] = Counter()  # answers the front made itself, by status
        # [listen] trusted_proxies: peers whose X-Forwarded-For names the client (clientip.py)
        self.trusted_proxies = trusted_proxies

    async def serve(
        self,
        conn: Conn,
        client: tuple[str, int],
        sni: str | None = None,
        cert: Identity | None = None,
    ) -> None:
        """Serve every request of ``conn`` until either side closes (or it is upgraded)."""
        user = UserConn(self, conn, client, sni.lower().rstrip(".") if sni else None, cert)
        try:
            await user.run()
            await user.linger()
        except asyncio.CancelledError:
            if user.deadlines.timed_out is None:
                raise
        except (OSError, EOFError, Deadline):
            pass
        except Exception as exc:  # a bug must not take the gateway down: log, close
            log.warning("http connection from %s failed: %r", user.client_ip, exc)
        finally:
            user.finish()

    def close(self) -> None:
        """Close the idle upstreams (gateway stopping)."""
        self.pool.close()

    def drop_device(self, device: str) -> None:
        """The device's session ended (gone, superseded, revoked): its idle upstreams must
        not carry another request."""
        self.pool.drop_device(device)
