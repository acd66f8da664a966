"""A small bounded LRU with per-entry expiry, for the gateway's hot path.

Thread-safe (one lock) so that a slow argon2 check may run in a worker thread while the
event loop keeps reading the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, size: int, ttl: float | None = None) -> None:
        self.size = size
        self.ttl = ttl
        self._data: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, now: float = 0.0) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[1] <= now:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V, now: float = 0.0, ttl: float | None = None) -> None:
        life = ttl if ttl is not None else self.ttl
        until = now + life if life is not None else float("inf")
        with self._lock:
            self._data[key] = (value, until)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
