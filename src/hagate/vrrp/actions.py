"""Typed outputs of the state machine; the driver (daemon or simulator) carries them out.

The machine never touches the network or the host: it queues these and the driver drains
them with ``VrrpMachine.next_action()`` / ``actions()`` in order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hagate.vrrp.advert import Advert, IPAddress
from hagate.vrrp.state import State

_SEQUENCE = itertools.count(1)


def _next_seq() -> int:
    return next(_SEQUENCE)


def _addrs(addresses: tuple[IPAddress, ...]) -> str:
    return ",".join(str(a) for a in addresses)


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one advertisement; the driver picks the destination and encodes it."""

    advert: Advert

    def describe(self) -> str:
        return f"SendAdvert priority={self.advert.priority} int_cs={self.advert.advert_int_cs}"


@dataclass(frozen=True, slots=True)
class AddVips:
    """Configure the virtual addresses on the interface (becoming MASTER)."""

    addresses: tuple[IPAddress, ...]

    def describe(self) -> str:
        return f"AddVips {_addrs(self.addresses)}"


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove the virtual addresses from the interface (leaving MASTER)."""

    addresses: tuple[IPAddress, ...]

    def describe(self) -> str:
        return f"RemoveVips {_addrs(self.addresses)}"


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Gratuitous ARP (IPv4) / unsolicited NA (IPv6) for ``addresses``.

    ``repeat`` rounds back to back (keepalived ``garp_*_repeat``); one round is one message
    per address. The driver spaces messages by keepalived's ``garp_interval``.
    """

    addresses: tuple[IPAddress, ...]
    repeat: int = 1

    def describe(self) -> str:
        return f"SendGratuitous {_addrs(self.addresses)} x{self.repeat}"


@dataclass(frozen=True, slots=True)
class RunNotify:
    """Run the notify scripts for ``state`` (keepalived notify_master/backup/fault/stop)."""

    state: State
    deleted: bool = False  # STOP because a reload removed the instance (notify_deleted)
    # Emission order across instances: a sync group queues its members' notifications on
    # several machines, and keepalived's order (FIFO lines) is the order they were emitted.
    seq: int = field(default_factory=_next_seq, compare=False, repr=False)

    def describe(self) -> str:
        return f"RunNotify {self.state}"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The instance moved from ``old`` to ``new``; ``reason`` states the facts."""

    old: State
    new: State
    reason: str

    def describe(self) -> str:
        return f"StateChanged {self.old} -> {self.new}: {self.reason}"


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """The effective priority changed (tracked item weights); informational."""

    old: int
    new: int
    reason: str
    seq: int = field(default_factory=_next_seq, compare=False, repr=False)

    def describe(self) -> str:
        return f"PriorityChanged {self.old} -> {self.new}: {self.reason}"


@dataclass(frozen=True, slots=True)
class MasterRxLowerPri:
    """A master heard a lower-priority advert (keepalived notify_master_rx_lower_pri and the
    FIFO's ``MASTER_RX_LOWER_PRI`` line): a split brain is being resolved."""

    source: IPAddress
    priority: int
    seq: int = field(default_factory=_next_seq, compare=False, repr=False)

    def describe(self) -> str:
        return f"MasterRxLowerPri from {self.source} priority {self.priority}"


@dataclass(frozen=True, slots=True)
class GroupStateChanged:
    """A vrrp_sync_group moved from ``old`` to ``new``: run the group's notify scripts and
    write its FIFO line (keepalived send_group_notifies). ``reason`` states the facts."""

    group: str
    old: State
    new: State
    reason: str
    seq: int = field(default_factory=_next_seq, compare=False, repr=False)

    def describe(self) -> str:
        return f"GroupStateChanged {self.group} {self.old} -> {self.new}: {self.reason}"


Action = (
    SendAdvert
    | AddVips
    | RemoveVips
    | SendGratuitous
    | RunNotify
    | StateChanged
    | PriorityChanged
    | MasterRxLowerPri
    | GroupStateChanged
)
