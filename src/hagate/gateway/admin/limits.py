"""How much of the admin listener one client can hold: connections at once, and silence.

Connections from the network are bounded per client address and overall, apart from
loopback's, so that a flood from the network cannot make the local vrrp_script's ``/healthz``
fail; every read (the TLS handshake included) has a timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hagate.gateway.config import is_loopback

MAX_CONNECTIONS = 128  # at once, from every non-loopback peer together
CONNECTIONS_PER_PEER = 16  # at once, from one client address
MAX_LOCAL_CONNECTIONS = 1024  # at once, from loopback (a bound on threads)
READ_TIMEOUT = 10.0  # s a client may stay silent (the TLS handshake included)


@dataclass(slots=True)
class PeerSlots:
    """Connections open at once: at most ``per_peer`` from one network address and ``total``
    from the network together, so a flood from elsewhere cannot take the slots the local
    ``hagate gateway check`` (vrrp_script) needs; loopback peers (every local user looks the
    same there) share only ``local_total``, a bound on threads, not a fairness rule."""

    total: int = MAX_CONNECTIONS
    per_peer: int = CONNECTIONS_PER_PEER
    local_total: int = MAX_LOCAL_CONNECTIONS
    _open: dict[str, int] = field(default_factory=dict)
    _remote: int = 0
    _local: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, peer: str) -> bool:
        with self._lock:
            if is_loopback(peer):
                if self._local >= self.local_total:
                    return False
                self._local += 1
                return True
            mine = self._open.get(peer, 0)
            if mine >= self.per_peer or self._remote >= self.total:
                return False
            self._open[peer] = mine + 1
            self._remote += 1
            return True

    def give(self, peer: str) -> None:
        with self._lock:
            if is_loopback(peer):
                self._local -= 1
                return
            left = self._open.get(peer, 0) - 1
            if left > 0:
                self._open[peer] = left
            else:
                self._open.pop(peer, None)
            self._remote -= 1
