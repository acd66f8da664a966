"""The admin listener's socket: ``AdminServer`` turns ``[listen] admin*`` into a running
thread, and tells plain HTTP from TLS by the first byte a client sends.

Off loopback (``[listen] admin`` any other address) the config load already insisted on a
token, and on ``admin_tls = true`` or ``admin_insecure = true`` (config.admin_exposure). With
TLS the listener serves the gateway's own server certificate ([tls] cert/key, the console
checks it against [tls] ca) and tells the two protocols apart by the first byte a client sends
(a TLS handshake record is 0x16): ``/healthz`` and ``/metrics`` still answer plain HTTP,
``/api/*`` only over TLS (handler.py). Each connection takes a slot (limits.py) before it gets
a thread, and the handshake runs in that thread: a slow one holds only its own slot.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hagate.gateway.admin.api import AdminApi
from hagate.gateway.admin.auth import AdminAuth, RefusalLog
from hagate.gateway.admin.handler import handler_class
from hagate.gateway.admin.limits import READ_TIMEOUT, PeerSlots
from hagate.gateway.config import ConfigError, admin_exposure, is_loopback, read_token_file

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello
log = logging.getLogger("hagate.gateway.admin")  # the listener's one logger (docs name it)


class AdminServer:
    """``/healthz`` (200 or 503, JSON), ``/metrics`` and the console's JSON, in a thread.

    ``gateway`` gives the console's views; when it is not passed it is found as the object
    whose bound method ``health`` is (the gateway passes ``self.health``). ``token_file``,
    ``tls`` and ``insecure`` default to the gateway's ``[listen] admin_token_file``,
    ``admin_tls`` and ``admin_insecure`` (``cert``/``key`` to its ``[tls]`` ones); a token file
    group or others may read, or an exposure ``admin_exposure`` refuses, is a ConfigError
    here, so the gateway does not start.
    """

    def __init__(
        self,
        host: str,
        port: int,
        health: Callable[[], dict[str, object]],
        metrics: Callable[[], str],
        gateway: Gateway | None = None,
        token_file: Path | None = None,
        *,
        tls: bool | None = None,
        insecure: bool | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        gw: Gateway | None = gateway or getattr(health, "__self__", None)
        if gw is not None and not hasattr(gw, "sessions"):
            gw = None
        self.api = AdminApi(gw)
        cfg = gw.cfg if gw is not None else None
        if token_file is None and cfg is not None:
            token_file = cfg.admin_token_file
        tls = tls if tls is not None else bool(cfg is not None and cfg.admin_tls)
        insecure = (
            insecure if insecure is not None else bool(cfg is not None and cfg.admin_insecure)
        )
        problem = admin_exposure(host, token_file is not None, tls, insecure)
        if problem is not None:
            raise ConfigError(f"[listen] {problem[0]}: {problem[1]}")
        token = read_token_file(token_file).encode() if token_file is not None else None
        self.tls: ssl.SSLContext | None = None
        if tls:
            cert = cert or (cfg.cert if cfg is not None else None)
            key = key or (cfg.key if cfg is not None else None)
            if cert is None or key is None:
                raise ConfigError("[listen] admin_tls: needs [tls] cert and key")
            self.tls = admin_tls_context(cert, key)
        self.auth = AdminAuth(token)
        self.insecure = insecure
        self.refusals = RefusalLog()
        self.slots = PeerSlots()
        handler = handler_class(
            health, metrics, self.api, self.auth, self.refusals, self.tls is not None
        )
        self.httpd = _Server((host, port), handler, self.slots, self.tls)
        self.httpd.timeout = 5
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="hagate-admin", daemon=True
        )

    def start(self) -> None:
        for level, line in start_notes(self.address, self.auth.token is not None, self.insecure):
            log.log(level, "%s", line)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    """A thread per connection, once it has a slot; TLS if its first byte says so."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        slots: PeerSlots,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.peer_slots = slots
        self.tls_context = tls
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.peer_slots.take(client_address[0]):
            self.shutdown_request(request)  # full: close now, never queue unbounded
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.peer_slots.give(client_address[0])
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # In the connection's own thread: a slow handshake holds only its own slot.
        try:
            request.settimeout(READ_TIMEOUT)
            if self.tls_context is not None and _speaks_tls(request):
                request = self.tls_context.wrap_socket(request, server_side=True)
            super().process_request_thread(request, client_address)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
        finally:
            self.peer_slots.give(client_address[0])


def admin_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The admin listener's TLS: the gateway's own server certificate, TLS 1.2 or newer (curl
    and Prometheus speak it too), no client certificate (the bearer token authenticates)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        why = f"cannot load [tls] cert/key ({cert}, {key}): {exc}"
        raise ConfigError(f"[listen] admin_tls: {why}") from None
    return ctx


def _speaks_tls(sock: socket.socket) -> bool:
    """Whether the client's first byte opens a TLS handshake (it is only peeked at)."""
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    return first[:1] == bytes([TLS_HANDSHAKE])


def start_notes(address: tuple[str, int], has_token: bool, insecure: bool) -> list[tuple[int, str]]:
    """What the log says when the listener starts: who can read it, and what crosses in
    clear (the config load has refused the exposures that are never right)."""
    host, port = address[0], address[1]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    notes: list[tuple[int, str]] = []
    if not has_token:
        notes.append((
            logging.INFO,
            f"admin listener on {where} (loopback) without a token: /api/* reads (devices, "
            "access log) are open to every local user, actions are off "
            "([listen] admin_token_file)",
        ))  # fmt: skip
    if insecure and not is_loopback(host):
        notes.append((
            logging.WARNING,
            f"admin listener on {where} in plain HTTP (admin_insecure = true): the admin "
            "token crosses the network in clear; prefer admin_tls = true",
        ))  # fmt: skip
    return notes
