"""Who may use ``/api/*``: the gates a request passes before any route runs.

``/healthz`` and ``/metrics`` are open (vrrp_script and Prometheus read them). Every ``/api/*``
request needs ``Authorization: Bearer TOKEN`` when ``[listen] admin_token_file`` is set (401
otherwise); without a token the reads stay open to whoever reaches the listener (bind it to
loopback) and the kick is refused (403): any local user could reach a loopback port. Every
``/api/*`` request also needs a Host that is an address literal or ``localhost`` (no DNS
rebinding). The checks are pure so that they are tested without a socket; refusals are
counted and logged at most once a second.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from dataclasses import dataclass, field

NEED_TOKEN = (
    "actions need the admin token: set [listen] admin_token_file in gateway.toml (docs/gateway.md)"
)
NEED_TLS = "this admin listener serves /api/* over https only ([listen] admin_tls)"
log = logging.getLogger("hagate.gateway.admin")  # the listener's one logger (docs name it)


def host_is_local(host_header: str | None) -> bool:
    """An address literal or ``localhost`` (a rebinding DNS name is neither)."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class AdminAuth:
    """Who may use ``/api/*``: the bearer token's holder, or (no token) readers on loopback.

    ``check`` is pure: it returns None (allowed) or the refusal's status and reason.
    """

    token: bytes | None = None

    def check(self, method: str, authorization: str | None) -> tuple[int, str] | None:
        if self.token is None:
            return None if method == "GET" else (403, NEED_TOKEN)
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "missing Authorization: Bearer <admin token>"
        if not hmac.compare_digest(given.strip().encode(errors="replace"), self.token):
            return 401, "wrong admin token"
        return None


@dataclass(slots=True)
class RefusalLog:
    """Refused requests, logged at most once a second (a local user must not flood the log)."""

    refused: int = 0
    _unlogged: int = 0
    _last: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, now: float, line: str, to: logging.Logger | None = None) -> None:
        """Count a refusal; log it (to ``to``, else as ``admin:`` here) unless one was logged
        less than a second ago: the next logged line counts those."""
        with self._lock:
            self.refused += 1
            if now - self._last < 1.0:
                self._unlogged += 1
                return
            more, self._unlogged, self._last = self._unlogged, 0, now
        tail = f" (and {more} more refused)" if more else ""
        if to is None:
            log.warning("admin: %s%s", line, tail)
        else:
            to.warning("%s%s", line, tail)
