"""The node-local admin listener: ``/healthz`` for vrrp_script, ``/metrics`` for Prometheus.

It runs in a thread of its own, so that it answers within milliseconds even while the event
loop is busy with thousands of agents redialling after a failover (a slow answer would make
`hagate gateway check` fail and the new master lower its own priority). It still reports the
loop's health: the loop stamps ``tick`` on every heartbeat and a stale stamp means unhealthy.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AdminServer:
    """``/healthz`` (200 or 503, JSON) and ``/metrics`` on a local address, in a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], dict[str, object]],
        metrics: Callable[[], str],
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    state = health()
                    body = json.dumps(state).encode()
                    self._send(200 if state.get("ok") else 503, "application/json", body)
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", metrics().encode())
                else:
                    self._send(404, "text/plain", b"try /healthz or /metrics\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = Server((host, port), Handler)
        self.httpd.timeout = 5
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="hagate-admin", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
