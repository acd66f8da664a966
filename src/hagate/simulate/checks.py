"""A vrrp_script's status from its run results: keepalived 2.2.7's rise/fall counter.

keepalived (vrrp_scheduler.c vrrp_script_child_thread) keeps one counter per script: it
starts at rise-1 so the first result decides at once; then ``rise`` successes in a row make
the script OK and ``fall`` failures in a row make it FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RiseFall:
    """The counter; ``ok`` is None until the first result (keepalived: INIT)."""

    rise: int = 1
    fall: int = 1
    ok: bool | None = None
    result: int = 0

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"rise {self.rise} and fall {self.fall} must be at least 1")
        self.result = self.rise - 1

    def record(self, success: bool) -> bool:
        """Apply one run's result; returns True when the status changed."""
        top = self.rise + self.fall - 1
        old = self.ok
        if success:
            if self.result < self.rise - 1:
                self.result += 1
            elif self.result != top:
                if self.result < self.rise:
                    self.ok = True
                self.result = top
        else:
            if self.result > self.rise:
                self.result -= 1
            else:
                if self.result == self.rise or self.ok is None:
                    self.ok = False
                self.result = 0
        return self.ok != old
