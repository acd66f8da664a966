"""Idle upstream connections (data connections to a device's HTTP service), kept per
(device, service) and reused, as nginx's upstream ``keepalive`` does.

A pooled connection is watched by the event loop while it waits (:meth:`Conn.idle`), so
taking one costs no syscall; one the device closed meanwhile is dropped. A close that lands
between the check and the request is caught by the exchange's one retry.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from hagate.net.conn import Conn

Key = tuple[str, str | None]  # (device, service or None for its default web UI)


def alive(conn: Conn) -> bool:
    """An idle upstream the device has not closed (and that holds no stray bytes)."""
    if conn.closed or conn.stale or conn.rbuf or conn.wbuf:
        return False
    sock = conn.sock
    return not (isinstance(sock, ssl.SSLSocket) and sock.pending())  # decrypted, unasked


class UpstreamPool:
    """Idle upstream connections per key: newest reused first, at most ``per_key`` kept,
    each closed after ``idle`` seconds unused."""

    def __init__(self, per_key: int = 32, idle: float = 15.0) -> None:
        self.per_key = per_key
        self.idle = idle
        self._idle: dict[Key, deque[tuple[Conn, float]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.reused = 0
        self.opened = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._idle.values())

    def take(self, key: Key) -> Conn | None:
        queue = self._idle.get(key)
        while queue:
            conn, _ = queue.pop()
            if alive(conn):
                self.reused += 1
                return conn  # an emptied queue stays for the put that follows (expiry drops it)
            conn.close()
        return None

    def put(self, key: Key, conn: Conn) -> None:
        if self.per_key <= 0 or self.idle <= 0 or conn.closed:
            conn.close()
            return
        queue = self._idle.get(key)
        if queue is None:
            queue = self._idle[key] = deque()
        elif len(queue) >= self.per_key:
            queue.popleft()[0].close()
        conn.idle()
        now = conn.loop.time()
        queue.append((conn, now))
        if self._timer is None:
            self._timer = conn.loop.call_at(now + self.idle, self._expire)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        before = loop.time() - self.idle
        for key in list(self._idle):
            queue = self._idle[key]
            while queue and (queue[0][1] <= before or queue[0][0].closed):
                queue.popleft()[0].close()
            if not queue:
                del self._idle[key]
        if self._idle:
            oldest = min(q[0][1] for q in self._idle.values())
            self._timer = loop.call_at(oldest + self.idle, self._expire)

    def drop_device(self, device: str) -> None:
        """The device's session ended: its idle upstreams are dead."""
        for key in [k for k in self._idle if k[0] == device]:
            for conn, _ in self._idle.pop(key):
                conn.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue in self._idle.values():
            for conn, _ in queue:
                conn.close()
        self._idle.clear()
