"""Devices an operator kicked *and* banned for a while: their agents' hellos are refused.

A kick alone ends a session, and the agent is back within a second; a ban keeps it out for
up to ``MAX_BAN_S`` (the tunnel front answers its hello with the wire's ``error``, code
``banned`` and ``retry_after_ms``: the agent waits that long, docs/tunnel-wire.md). The hint is
the rest of the ban but at most ``RETRY_MAX_S``, so that an unban lets the device back within
that (a banned agent redials about once a minute: one handshake a minute is nothing). Bans are
node-local and held in memory: a restarted gateway, or the other node after a failover, has
none (a device that must stay out is revoked in the CRL instead).

Pure: ``now`` (the event loop's clock) is passed in; the gateway's loop alone mutates it (the
admin thread goes through the loop).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BAN_S = 24 * 3600  # a longer exclusion is a revocation (the CRL), not a ban
MAX_BANS = 10_000  # devices banned at once; the soonest to expire go first when full
RETRY_MAX_S = 60  # the longest wait a refused hello is told (an unban takes effect within it)


@dataclass(frozen=True, slots=True)
class Ban:
    device: str
    until: float  # the loop's clock
    by: str

    def as_json(self, now: float, wall: float) -> dict[str, object]:
        left = max(0.0, self.until - now)
        return {
            "device": self.device,
            "by": self.by,
            "left_s": round(left, 1),
            "until": round(wall + left, 3),
        }


class DeviceBans:
    """At most ``MAX_BANS`` live bans, expired ones dropped as they are met."""

    def __init__(self, limit: int = MAX_BANS) -> None:
        self._bans: dict[str, Ban] = {}
        self._limit = limit

    def ban(self, device: str, seconds: float, by: str, now: float) -> Ban:
        """Ban (or re-ban: the new duration replaces the old) ``device`` for ``seconds``."""
        if not 0 < seconds <= MAX_BAN_S:
            raise ValueError(f"ban must be 1..{MAX_BAN_S} seconds")
        self._bans.pop(device, None)
        if len(self._bans) >= self._limit:
            self.expire(now)
        while len(self._bans) >= self._limit:
            soonest = min(self._bans.values(), key=_until)
            del self._bans[soonest.device]
        ban = self._bans[device] = Ban(device, now + seconds, by)
        return ban

    def lift(self, device: str) -> bool:
        return self._bans.pop(device, None) is not None

    def remaining(self, device: str, now: float) -> float:
        """Seconds the device stays banned (0: not banned)."""
        ban = self._bans.get(device)
        if ban is None:
            return 0.0
        if ban.until <= now:
            del self._bans[device]
            return 0.0
        return ban.until - now

    def refusal_ms(self, device: str, now: float) -> int:
        """The ``retry_after_ms`` of a banned device's refused hello; 0: not banned."""
        left = self.remaining(device, now)
        return int(min(left, RETRY_MAX_S) * 1000) + 1 if left > 0 else 0

    def get(self, device: str, now: float) -> Ban | None:
        return self._bans.get(device) if self.remaining(device, now) > 0 else None

    def expire(self, now: float) -> list[Ban]:
        """The live bans, soonest to end first (expired ones are dropped)."""
        for device in [d for d, b in self._bans.items() if b.until <= now]:
            del self._bans[device]
        return sorted(self._bans.values(), key=_until)

    def __len__(self) -> int:
        return len(self._bans)


def _until(ban: Ban) -> float:
    return ban.until
