"""Token buckets per key (an identity, or a client address): requests and handshakes per second.

Pure: the caller passes ``now``. Buckets of keys that have been quiet long enough are dropped,
so a flood from many addresses costs a bounded amount of memory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``allow(key, now)``: at most ``rate`` per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str, now: float) -> bool:
        if self.rate <= 0:
            return True
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            b = self._buckets[key] = _Bucket(self.burst, now)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
        if b.tokens < 1.0:
            return False
        b.tokens -= 1.0
        return True

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate  # a bucket refilled after this long is like a new one
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.stamp < full}
        if len(self._buckets) >= self.max_keys:  # still a flood: forget the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1].stamp)[self.max_keys // 2 :]
            self._buckets = dict(keep)
