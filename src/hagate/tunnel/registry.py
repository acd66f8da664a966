"""Which session owns each device, as a pure state machine that returns actions.

The newest authenticated session of a device wins at once: the old one is usually a half-open
connection the gateway cannot know is dead yet (agent restarted, network blip), and waiting
for it would keep the device offline. The old session is told :class:`Supersede` with a
``retry_after_ms`` hint, which a live agent obeys.

Two agents with one certificate (a cloned device image) would take the device from each
other forever. A supersede within ``twin_window_s`` of the previous one of the same device
counts as a repeat; the hint doubles with each repeat (1 s, 2 s, 4 s ... capped at 60 s), and
from the first repeat on the registry enforces it: a newcomer that comes back before the
hint it was given ran out is refused (:class:`RefuseTwin`) instead of taking over, so
agents that ignore the hint (v1) cannot flap either. The hold protects the current holder
only: once its session ends, the next newcomer is attached at once. A single reconnect is
never refused.

A v2 agent names its process (``instance`` in its hello, random per start): a new session of
the instance that holds the device is that agent reconnecting, never a twin, so it is never
refused and resets nothing, however often the network blips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import islice

TWIN_WINDOW_S = 120.0  # more than twice the cap: twins at the cap keep counting as twins
BACKOFF_BASE_MS = 1000
BACKOFF_CAP_MS = 60_000


@dataclass(frozen=True, slots=True)
class Attached:
    """``session`` now owns ``device`` (bind its routes); ``replaced`` is the old one."""

    device: str
    session: str
    replaced: str | None = None


@dataclass(frozen=True, slots=True)
class Supersede:
    """Tell ``session`` it was superseded (send Superseded(retry_after_ms)), then close it."""

    device: str
    session: str
    retry_after_ms: int
    repeats: int  # supersedes of this device in a row within the window; >= 2: twins
    same_certificate: bool
    same_instance: bool = False  # the holder's own agent process reconnected: no twin

    @property
    def twins(self) -> bool:
        return self.repeats >= 2


@dataclass(frozen=True, slots=True)
class RefuseTwin:
    """Refuse the newcomer (send Refused(code="twin", retry_after_ms)); the holder stays."""

    device: str
    retry_after_ms: int


@dataclass(frozen=True, slots=True)
class Detached:
    """``session``, the device's current one, ended: release the device's routes."""

    device: str
    session: str


Action = Attached | Supersede | RefuseTwin | Detached


@dataclass(slots=True)
class _Device:
    session: str | None
    serial: int
    instance: str = ""
    repeats: int = 0
    last_supersede: float = -math.inf
    hold_until: float = -math.inf


class SessionRegistry:
    """Device -> current session, supersede and twin back-off. Pure: ``now`` is passed in."""

    def __init__(
        self,
        twin_window_s: float = TWIN_WINDOW_S,
        base_ms: int = BACKOFF_BASE_MS,
        cap_ms: int = BACKOFF_CAP_MS,
    ) -> None:
        self.twin_window_s = twin_window_s
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self._devices: dict[str, _Device] = {}
        self._owner: dict[str, str] = {}  # session -> device, current sessions only
        self.twins = 0  # supersedes recognised as two agents with one identity
        self.twins_refused = 0  # newcomers refused because they came back too early
        self.superseded = 0

    def __len__(self) -> int:
        return len(self._owner)

    def session_of(self, device: str) -> str | None:
        d = self._devices.get(device)
        return d.session if d is not None else None

    def device_of(self, session: str) -> str | None:
        return self._owner.get(session)

    def is_current(self, device: str, session: str) -> bool:
        return self.session_of(device) == session

    def attach(
        self, device: str, serial: int, session: str, now: float, instance: str = ""
    ) -> list[Action]:
        """A new authenticated session of ``device`` (certificate ``serial``) wants it.

        ``instance`` is the agent process's name from its hello ("" from v1 agents).
        """
        d = self._devices.get(device)
        if d is None:
            self._devices[device] = _Device(session, serial, instance)
            self._owner[session] = device
            return [Attached(device, session)]
        actions: list[Action] = []
        old = d.session
        if old is not None and instance and instance == d.instance:
            # The holder itself reconnecting (its old connection is half-open): no twin.
            del self._owner[old]
            self.superseded += 1
            actions.append(Supersede(device, old, 0, 0, d.serial == serial, True))
        elif old is not None:
            if d.repeats >= 2 and now < d.hold_until:
                self.twins_refused += 1
                return [RefuseTwin(device, math.ceil(round((d.hold_until - now) * 1000, 3)))]
            within = now - d.last_supersede <= self.twin_window_s
            d.repeats = d.repeats + 1 if within else 1
            d.last_supersede = now
            retry = min(self.cap_ms, self.base_ms * 2 ** min(d.repeats - 1, 30))
            d.hold_until = now + retry / 1000
            self.superseded += 1
            if d.repeats >= 2:
                self.twins += 1
            del self._owner[old]
            actions.append(Supersede(device, old, retry, d.repeats, d.serial == serial))
        d.session, d.serial, d.instance = session, serial, instance
        self._owner[session] = device
        actions.append(Attached(device, session, old))
        return actions

    def detach(self, session: str, now: float) -> list[Action]:
        """``session`` ended (any reason); a superseded or unknown session changes nothing."""
        device = self._owner.pop(session, None)
        if device is None:
            return []
        d = self._devices[device]
        d.session = None
        d.hold_until = -math.inf  # the hold protected this holder; whoever comes next wins
        if now - d.last_supersede > self.twin_window_s:
            del self._devices[device]  # no flapping history worth keeping
        return [Detached(device, session)]

    def expire(self, now: float) -> None:
        """Forget the history of devices without a session whose window has passed."""
        for device, d in list(self._devices.items()):
            if d.session is None and now - d.last_supersede > self.twin_window_s:
                del self._devices[device]

    def remembered(self) -> int:
        """Devices with a session or a recent history (bounded by ``expire``)."""
        return len(self._devices)


# ------------------------------------------------------------------------------ standbys


MAX_STANDBY_ADDRESSES = 64  # distinct dialled addresses a node watches for (a bind each)


@dataclass(frozen=True, slots=True)
class Parked:
    """``standby`` of ``device`` is parked, waiting for this node to hold ``address``;
    ``replaced`` is the device's previous standby here (close it: the newest wins)."""

    device: str
    standby: str
    address: str
    replaced: str | None = None


@dataclass(frozen=True, slots=True)
class RefuseStandby:
    """Refuse the standby (its ``address`` would be one too many to watch)."""

    device: str
    reason: str


@dataclass(frozen=True, slots=True)
class Promote:
    """This node now holds ``address``: promote ``standby`` (attach it as ``device``'s
    session through :meth:`SessionRegistry.attach`, then send its welcome)."""

    device: str
    standby: str
    address: str


StandbyAction = Parked | RefuseStandby | Promote


class StandbyTable:
    """The standby connections a node holds, at most one per device (the newest wins).

    Pure: the driver asks :meth:`addresses` which dialled addresses to check (one bind
    each, however many standbys name it), and :meth:`promote` hands out the standbys of an
    address this node now holds, oldest first, ``limit`` at a time (the driver writes one
    batch of welcomes per loop turn). A standby is not a session: :class:`SessionRegistry`
    knows nothing of it until its promotion.
    """

    def __init__(self, max_addresses: int = MAX_STANDBY_ADDRESSES) -> None:
        self.max_addresses = max_addresses
        self._of_device: dict[str, str] = {}  # device -> its standby here
        self._entry: dict[str, tuple[str, str]] = {}  # standby -> (device, address)
        self._at: dict[str, dict[str, None]] = {}  # address -> its standbys, oldest first
        self.replaced = 0  # standbys closed because the device parked a newer one
        self.promoted = 0

    def __len__(self) -> int:
        return len(self._entry)

    def device_of(self, standby: str) -> str | None:
        entry = self._entry.get(standby)
        return entry[0] if entry is not None else None

    def standby_of(self, device: str) -> str | None:
        return self._of_device.get(device)

    def addresses(self) -> list[str]:
        """The distinct addresses the parked standbys dialled (the ones to check)."""
        return list(self._at)

    def park(self, device: str, standby: str, address: str) -> list[StandbyAction]:
        if address not in self._at and len(self._at) >= self.max_addresses:
            return [RefuseStandby(device, f"more than {self.max_addresses} dialled addresses")]
        old = self._of_device.get(device)
        if old is not None:
            self.drop(old)
            self.replaced += 1
        self._of_device[device] = standby
        self._entry[standby] = (device, address)
        self._at.setdefault(address, {})[standby] = None
        return [Parked(device, standby, address, old)]

    def drop(self, standby: str) -> bool:
        """``standby`` ended (closed, replaced, revoked); False if it was not parked."""
        entry = self._entry.pop(standby, None)
        if entry is None:
            return False
        device, address = entry
        if self._of_device.get(device) == standby:
            del self._of_device[device]
        at = self._at[address]
        del at[standby]
        if not at:
            del self._at[address]
        return True

    def promote(self, address: str, limit: int) -> list[StandbyAction]:
        """Up to ``limit`` standbys of ``address`` (this node holds it now), oldest first;
        they leave the table (the driver attaches each as a session)."""
        at = self._at.get(address)
        if not at:
            return []
        out: list[StandbyAction] = []
        for standby in list(islice(at, max(0, limit))):
            device = self._entry[standby][0]
            self.drop(standby)
            out.append(Promote(device, standby, address))
        self.promoted += len(out)
        return out
