"""One HTTP request to the admin listener: which paths are open, the gates ``/api/*`` must
pass, the kick's body limits, and the answer's headers.

``/healthz`` and ``/metrics`` answer anyone, in plain HTTP too (`hagate gateway check` and
Prometheus carry no secret). ``/api/*`` first passes the Host check, then (on a TLS listener)
must have come over TLS, then the token (auth.py); a POST also needs ``Content-Type:
application/json``, which no cross-site form can send without a CORS preflight this server
never answers. The routes themselves are api.py's.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hagate.gateway.admin.api import AdminApi
from hagate.gateway.admin.auth import NEED_TLS, AdminAuth, RefusalLog, host_is_local
from hagate.gateway.admin.limits import READ_TIMEOUT

MAX_BODY = 4096


def handler_class(
    health: Callable[[], dict[str, object]],
    metrics: Callable[[], str],
    api: AdminApi,
    auth: AdminAuth,
    refusals: RefusalLog,
    tls_only: bool,
) -> type[BaseHTTPRequestHandler]:
    """The request handler of one listener; ``tls_only``: ``/api/*`` needs TLS."""

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            if path == "/healthz":
                state = health()
                body = json.dumps(state).encode()
                self._send(200 if state.get("ok") else 503, "application/json", body)
            elif path == "/metrics":
                self._send(200, "text/plain; version=0.0.4", metrics().encode())
            elif path.startswith("/api/"):
                if not self._api_ok("GET", path):
                    return
                if self._authorized("GET", path):
                    self._json(*api.get(path, query))
            else:
                self._send(404, "text/plain", b"try /healthz or /metrics\n")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            path = url.path
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                length = -1
            if not self._api_ok("POST", path) or not self._authorized("POST", path):
                pass
            elif ctype != "application/json":
                self._json(415, {"error": "Content-Type must be application/json"})
            elif not 0 <= length <= MAX_BODY:
                self._json(413, {"error": f"body must be at most {MAX_BODY} bytes"})
            else:
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._json(400, {"error": "body is not JSON"})
                    return
                if not isinstance(body, dict):
                    self._json(400, {"error": "body must be a JSON object"})
                    return
                self._json(*api.post(path, body, parse_qs(url.query)))

        def _api_ok(self, method: str, path: str) -> bool:
            """True, or the request is answered: a rebinding Host (421), or plain HTTP on
            a TLS listener (403: the token, if sent, has crossed in clear; say so)."""
            if not host_is_local(self.headers.get("Host")):
                self._json(421, {"error": "Host must be an address or localhost"})
                return False
            if tls_only and not isinstance(self.connection, ssl.SSLSocket):
                peer = self.client_address[0]
                sent = " (it sent a token in clear)" if self.headers.get("Authorization") else ""
                refusals.note(
                    time.monotonic(), f"403 {method} {path} from {peer}: plain HTTP{sent}"
                )
                self._json(403, {"error": NEED_TLS})
                return False
            return True

        def _authorized(self, method: str, path: str) -> bool:
            """True, or the refusal is answered (401 or 403) and logged."""
            refusal = auth.check(method, self.headers.get("Authorization"))
            if refusal is None:
                return True
            code, why = refusal
            peer = self.client_address[0]
            refusals.note(time.monotonic(), f"{code} {method} {path} from {peer}: {why}")
            extra = {"WWW-Authenticate": 'Bearer realm="hagate-admin"'} if code == 401 else {}
            self._json(code, {"error": why}, extra)
            return False

        def _json(
            self, code: int, data: dict[str, Any], extra: dict[str, str] | None = None
        ) -> None:
            self._send(code, "application/json", json.dumps(data).encode(), extra)

        def _send(
            self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(code)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
