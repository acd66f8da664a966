"""The node-local admin listener: ``/healthz`` for vrrp_script, ``/metrics`` for Prometheus."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

from hagate.gateway.http import parse_head, response
from hagate.gateway.netio import Conn, ProtocolError


async def serve_admin(
    sock: socket.socket, healthy: Callable[[], dict[str, object]], metrics: Callable[[], str]
) -> None:
    conn = Conn(sock)
    try:
        head = await asyncio.wait_for(conn.read_until(b"\r\n\r\n", 8192), 5.0)
        method, target, _ = parse_head(head)
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            out = response(405, "only GET")
        elif path == "/healthz":
            state = healthy()
            body = json.dumps(state).encode()
            code = 200 if state.get("ok") else 503
            out = (
                f"HTTP/1.1 {code} {'OK' if code == 200 else 'Service Unavailable'}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body
        elif path == "/metrics":
            body = metrics().encode()
            out = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body
        else:
            out = response(404, "try /healthz or /metrics")
        conn.write(out)
        await asyncio.wait_for(conn.drain(), 5.0)
    except (OSError, EOFError, ProtocolError, TimeoutError):
        pass
    finally:
        conn.close()
