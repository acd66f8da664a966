"""Tracked items (scripts, interfaces) and how they change the effective priority.

keepalived semantics (vrrp_track.c): a positive weight is added while the item is OK, a
negative weight is added (subtracted) while it has failed, and a weight of 0 puts the
instance in FAULT while the item has failed. ``reverse`` is keepalived's weight_multiplier
-1: the same contribution with its sign flipped (``weight 10 reverse``: -10 while OK, 0 while
failed; ``weight -10 reverse``: 0 while OK, +10 while failed); with weight 0 it swaps the
sense of OK/failed (FAULT while OK).

A ``scaled`` item (a weighted track_file, keepalived track_file.c) has a level instead of
up/down: the file's number times the weight (times -1 with ``reverse``), clamped to
-254..254, is added to the priority.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIORITY_OWNER = 255  # RFC 9568 §6.1: the address owner
PRIORITY_STOP = 0  # RFC 9568 §5.2.4: the master stops participating
MAX_WEIGHT = 254


@dataclass(frozen=True, slots=True)
class TrackedItem:
    """One tracked script or interface as configured on the instance."""

    name: str
    weight: int = 0
    reverse: bool = False
    initially_ok: bool = True
    scaled: bool = False  # a weighted track_file: level x weight, not up/down

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("tracked item needs a name")
        if not -MAX_WEIGHT <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"tracked item {self.name!r}: weight {self.weight} outside -254..254")

    def adjustment(self, ok: bool) -> int:
        """Priority change contributed while the item is ``ok`` (weight != 0).

        keepalived 2.2.7 initialise_interface_tracking_priorities() and
        process_script_update_priority(): ``weight * weight_multiplier``.
        """
        in_force = ok if self.weight > 0 else not ok
        base = self.weight if in_force else 0
        return -base if self.reverse else base

    def scaled_adjustment(self, level: int) -> int:
        """A scaled item's contribution: ``level * weight * multiplier``, within +-254."""
        value = level * self.weight * (-1 if self.reverse else 1)
        return max(-MAX_WEIGHT, min(MAX_WEIGHT, value))

    @property
    def neutral_ok(self) -> bool:
        """The status whose adjustment is 0 (keepalived: a script with no result yet)."""
        if self.weight:
            return self.weight < 0
        return not self.reverse

    def faults(self, ok: bool) -> bool:
        """True when this item holds the instance in FAULT."""
        return self.weight == 0 and ok == self.reverse


class Tracker:
    """Current status of an instance's tracked items."""

    __slots__ = ("_items", "_level", "_ok")

    def __init__(self, items: tuple[TrackedItem, ...]) -> None:
        self._items = {item.name: item for item in items}
        if len(self._items) != len(items):
            raise ValueError("tracked item names must be unique")
        self._ok = {item.name: item.initially_ok for item in items}
        self._level = {item.name: 0 for item in items if item.scaled}

    def set(self, name: str, ok: bool) -> bool:
        """Record a status; returns True when it changed. Unknown names are an error."""
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise ValueError(f"unknown tracked item {name!r} (tracked: {known})")
        changed = self._ok[name] != ok
        self._ok[name] = ok
        return changed

    def set_level(self, name: str, level: int) -> bool:
        """Record a scaled item's level (a track_file's number); True when it changed."""
        if name not in self._level:
            raise ValueError(f"tracked item {name!r} is not a weighted track_file")
        changed = self._level[name] != level
        self._level[name] = level
        return changed

    def level(self, name: str) -> int | None:
        """A scaled item's level, None for an up/down item."""
        return self._level.get(name)

    def is_ok(self, name: str) -> bool:
        return self._ok[name]

    def item(self, name: str) -> TrackedItem:
        return self._items[name]

    def adjustment(self) -> int:
        """Sum of the weights currently in force."""
        return sum(
            item.scaled_adjustment(self._level[name])
            if item.scaled
            else item.adjustment(self._ok[name])
            for name, item in self._items.items()
        )

    def faulted(self) -> tuple[str, ...]:
        """Names of the weight-0 items that currently hold the instance in FAULT."""
        return tuple(
            name
            for name, item in self._items.items()
            if not item.scaled and item.faults(self._ok[name])
        )


@dataclass(slots=True)
class RiseFall:
    """A vrrp_script's status from its run results: keepalived 2.2.7's rise/fall counter
    (vrrp_scheduler.c vrrp_script_child_thread), the one used by the daemon's script
    runner and by ``hagate simulate``.

    One counter per script: it starts at rise-1, so the first result decides at once; then
    ``rise`` successes in a row make the script OK and ``fall`` failures in a row make it
    FAILED. ``ok`` is None until the first result (keepalived: INIT). ``init_fail`` starts it
    FAILED with the counter at 0, needing ``rise`` successes.
    """

    rise: int = 1
    fall: int = 1
    init_fail: bool = False
    ok: bool | None = None
    result: int = 0

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"rise {self.rise} and fall {self.fall} must be at least 1")
        if self.init_fail:
            self.ok, self.result = False, 0
        else:
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


def effective_priority(base_priority: int, adjustment: int) -> int:
    """keepalived vrrp_set_effective_priority: base + weights, clamped to 1..254.

    The address owner (base 255) ignores weights.
    """
    if base_priority == PRIORITY_OWNER:
        return PRIORITY_OWNER
    return max(1, min(PRIORITY_OWNER - 1, base_priority + adjustment))
