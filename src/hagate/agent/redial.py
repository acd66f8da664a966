"""When a device agent redials the gateway after losing its session: a pure schedule.

After a master crash every agent of the fleet redials at once, and nobody knows when the
backup will take the VIP (up to Master_Down_Interval, 3.2 s at advert_int 1 s; 0.3 s at
VRRPv3 0.1 s). What the schedule must do, and how :class:`Steady` does it:

- **first retry fast**: the first attempt is due within ``first`` (50 ms) of the loss; a
  SIGTERMed master hands over in tens of milliseconds and a reset session may be a glitch;
- **steady while the outage is young**: for ``young`` seconds after the loss the agent
  retries every ``period`` on average (uniform within +-50 %), so when the VIP moves the
  agent finds the new master within ``1.5 * period``; exponential back-off here (the old
  schedule) left agents asleep for seconds right when the new master came up;
- **even, not clumped**: gaps are independent and uniform, so after a couple of attempts
  the fleet's attempts are spread evenly over every period whatever their common start
  (the crash); the new master's accept queue sees ``N / period`` arrivals per second
  spread over the period, not ``N`` at one instant;
- **gentle with a gateway that is up but overloaded**: a steady pace is for a VIP that has
  not moved yet (connect refused or unanswered: the kernel's cheap answer). An attempt that
  reached a gateway (TCP connected) and still failed (the handshake reset, evicted or timed
  out: the new master drowning in the storm) waits a full-jitter window that doubles from
  ``busy_base`` with each such failure in a row; 10,000 agents retrying every 0.25 s would
  otherwise keep a gateway's handshake queue full of connections it must evict;
- **bounded**: past ``young`` the gap grows with the outage's age (``age / 5``), up to
  ``max_delay``: a gateway that stays down for hours costs a retry every 30 s, not 4 per s;
  after a refusal or a supersession (``slow``) the wait is half to all of ``max_delay``.

No clock, no randomness of its own: the caller passes the outage's age and a uniform
number ``u`` in [0, 1), so the tests replay fleets of thousands of agents exactly.
:class:`Backoff` is the previous schedule (a few fast retries, then jittered exponential
back-off), kept for comparison in bench/fleet.py (``schedule = "backoff"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ScheduleKind(StrEnum):
    STEADY = "steady"
    BACKOFF = "backoff"


class Schedule(Protocol):
    def delay(self, attempt: int, age: float, u: float, slow: bool = False, busy: int = 0) -> float:
        """Seconds to wait before attempt ``attempt + 1``.

        ``attempt`` counts the failed attempts of this outage (1 after the loss itself),
        ``age`` is the outage's age in seconds, ``u`` a uniform number in [0, 1), ``slow``
        set after a refusal or a supersession (retrying soon will not help), ``busy`` the
        attempts in a row that reached a gateway (TCP connected) and still failed.
        """
        ...


AGE_FACTOR = 0.2  # past `young`, wait about a fifth of the outage's age


@dataclass(frozen=True, slots=True)
class Steady:
    """Fast first retry, steady jittered retries while young, then bounded growth."""

    first: float = 0.05
    period: float = 0.25
    young: float = 15.0
    max_delay: float = 30.0
    busy_base: float = 0.5

    def __post_init__(self) -> None:
        if not (self.first >= 0 and 0 < self.period <= self.max_delay and self.young >= 0):
            raise ValueError(f"invalid redial schedule {self}")

    def delay(self, attempt: int, age: float, u: float, slow: bool = False, busy: int = 0) -> float:
        if slow:  # as the old schedule did: half to all of max_delay
            return self.max_delay * (0.5 + 0.5 * u)
        if busy:  # a gateway answered but could not finish: overloaded, spread out (full
            # jitter over a doubling window), never hammer it at the steady pace
            return u * min(self.max_delay, self.busy_base * 2.0 ** (busy - 1))
        if attempt <= 1:
            return self.first * u
        if age < self.young:
            return self.period * (0.5 + u)
        step = min(self.max_delay, max(self.period, age * AGE_FACTOR))
        return min(self.max_delay, step * (0.75 + 0.5 * u))


@dataclass(frozen=True, slots=True)
class Backoff:
    """The previous schedule: ``fast_retries`` at ``fast_delay``, then exponential."""

    fast_retries: int = 3
    fast_delay: float = 0.1
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, age: float, u: float, slow: bool = False, busy: int = 0) -> float:
        if slow:
            attempt = max(attempt, self.fast_retries + 10)
        if attempt <= self.fast_retries:
            return self.fast_delay * (0.5 + u)
        step = min(self.max_delay, self.base_delay * 2.0 ** (attempt - self.fast_retries - 1))
        return step / 2 + u * step / 2
