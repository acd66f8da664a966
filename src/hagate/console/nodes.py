"""Reading one node: its gateway's admin JSON over HTTP(S), its VRRP daemon's status socket.

The console only reads, except for the kick, which it forwards to the node's admin listener as
a JSON POST. With the cluster's admin token (``--admin-token-file``, the gateways' ``[listen]
admin_token_file``) every request carries ``Authorization: Bearer``. ``connect`` makes the
TCP socket, so that a test can reach a node whose admin listener is on the loopback of another
network namespace. With ``tls`` (``--admin-ca``: the gateways' ``[listen] admin_tls``) the
connection is HTTPS, the gateway's certificate checked against the cluster CA and the node's
address (or ``--admin-server-name``) before the token is sent.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hagate.daemon.status import StatusError, query

Connect = Callable[[tuple[str, int], float], socket.socket]
MAX_ANSWER = 8 << 20  # 500 devices of JSON is ~250 KB: anything near this is not a node


class NodeError(RuntimeError):
    """A node did not answer, or answered something that is not its admin JSON; ``code`` is
    the HTTP status when it answered one (a 401/403 is a refusal, not a missing device)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def admin_client_context(ca: Path) -> ssl.SSLContext:
    """HTTPS to the gateways' admin listeners: their server certificate must chain to ``ca``
    (the cluster CA alone, not the system's) and name the address dialled.

    The admin listener ends a connection with a TCP FIN, not TLS close_notify (as the
    gateway's other fronts): that is read as the end of the answer, which is JSON checked
    whole, so a cut answer is still an error."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx


def tcp_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


@dataclass(frozen=True, slots=True)
class NodeTarget:
    """One gateway node: a name, its admin listener, its VRRP daemon's run directory."""

    name: str
    admin: tuple[str, int] | None
    run_dir: Path | None

    @classmethod
    def parse(cls, text: str) -> NodeTarget:
        """``NAME=HOST:PORT[,run=DIR]`` (or ``NAME=,run=DIR`` for VRRP only)."""
        name, sep, rest = text.partition("=")
        if not sep or not name or any(c in name for c in " ,/"):
            raise ValueError(f"--node {text!r}: want NAME=HOST:PORT[,run=RUN_DIR]")
        fields = rest.split(",")
        admin: tuple[str, int] | None = None
        if fields[0]:
            host, colon, port = fields[0].rpartition(":")
            if not colon or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--node {text!r}: {fields[0]!r} is not HOST:PORT")
            admin = (host.strip("[]") or "127.0.0.1", int(port))
        run_dir: Path | None = None
        for extra in fields[1:]:
            key, eq, value = extra.partition("=")
            if key != "run" or not eq or not value:
                raise ValueError(f"--node {text!r}: unknown option {extra!r} (run=DIR)")
            run_dir = Path(value)
        if admin is None and run_dir is None:
            raise ValueError(f"--node {text!r}: give an admin address, a run=DIR, or both")
        return cls(name, admin, run_dir)


class NodeClient:
    """HTTP/1.1 to one admin listener (a connection per request: a few per second)."""

    def __init__(
        self,
        target: NodeTarget,
        connect: Connect = tcp_connect,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.target = target
        self._connect = connect
        self._token = token  # checked by read_token_file: printable ASCII, no spaces
        self._tls = tls
        self._server_name = server_name  # else the admin address: its IP must be in the cert

    @property
    def scheme(self) -> str:
        return "https" if self._tls is not None else "http"

    def vrrp(self, timeout: float = 0.5) -> dict[str, Any]:
        if self.target.run_dir is None:
            raise NodeError("no run directory given for this node's VRRP daemon")
        try:
            return query(self.target.run_dir, timeout=timeout)
        except StatusError as exc:
            raise NodeError(str(exc)) from None

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = 2.0) -> Any:
        if params:
            path += "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return self._request("GET", path, None, timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float = 3.0) -> Any:
        return self._request("POST", path, json.dumps(body).encode(), timeout)

    def _request(self, method: str, path: str, body: bytes | None, timeout: float) -> Any:
        address = self.target.admin
        if address is None:
            raise NodeError("no admin address given for this node's gateway")
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{address[1]}\r\nConnection: close\r\n"
        if self._token is not None:
            head += f"Authorization: Bearer {self._token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        try:
            with self._open(address, timeout) as sock:
                sock.sendall(head.encode() + b"\r\n" + (body or b""))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NodeError(f"{self.target.name}: admin answer took over {timeout} s")
                    sock.settimeout(left)
                    data = sock.recv(65536)
                    if not data:
                        break
                    size += len(data)
                    if size > MAX_ANSWER:
                        raise NodeError(f"{self.target.name}: admin answer too large")
                    chunks.append(data)
        except ssl.SSLCertVerificationError as exc:
            why = f"TLS: certificate verify failed: {exc.verify_message or exc.reason}"
            raise NodeError(f"{self.target.name}: admin {address[0]}:{address[1]}: {why}") from None
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            raise NodeError(f"{self.target.name}: admin {address[0]}:{address[1]}: {why}") from None
        raw = b"".join(chunks)
        return self._answer(raw)

    def _open(self, address: tuple[str, int], timeout: float) -> socket.socket:
        """The connection, TLS-wrapped (and the gateway's certificate checked) with ``tls``."""
        sock = self._connect(address, timeout)
        sock.settimeout(timeout)
        if self._tls is None:
            return sock
        try:
            return self._tls.wrap_socket(sock, server_hostname=self._server_name or address[0])
        except BaseException:
            sock.close()
            raise

    def _answer(self, raw: bytes) -> Any:
        headers, _, payload = raw.partition(b"\r\n\r\n")
        status_line = headers.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[1].isdigit():
            raise NodeError(f"{self.target.name}: not an HTTP answer from the admin listener")
        try:
            data = json.loads(payload)
        except ValueError:
            raise NodeError(f"{self.target.name}: admin answer is not JSON") from None
        code = int(status_line[1])
        if code != 200:
            error = data.get("error") if isinstance(data, dict) else None
            raise NodeError(f"{self.target.name}: {code} {error or ''}".rstrip(), code)
        return data
