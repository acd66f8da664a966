"""vrrp_sync_group: instances that change state together (keepalived 2.2.7 vrrp_sync.c).

A gateway with a public and a private VIP on two interfaces needs both on the same node;
a sync group ties the instances' states so that when one moves the others follow. Pure: the
group holds its members' machines and, from inside their state changes, calls the
``sync_to_*`` inputs of the others; their actions land on their own queues, and the group's
own notifications (:class:`~hagate.vrrp.actions.GroupStateChanged`) on the queue of the
member that moved first. A driver therefore drains every member after any input to one
(``pending()`` says which have work), and orders notifications by their ``seq``.

keepalived's rules, as followed here:

* the group starts BACKUP, or MASTER if every member is the address owner with
  ``state MASTER`` (vrrp_sync_set_group); its BACKUP/FAULT start is notified before its
  members' (vrrp_init_state);
* a member whose down timer expires becomes MASTER only if every other member wants MASTER
  too (timed out itself, or is MASTER) or the group already is MASTER; otherwise it wants
  MASTER, stays BACKUP and runs its down timer again (vrrp_sync_can_goto_master: "prefer
  backup state to avoid thrashing"); an acceptable advert makes it want BACKUP again;
* a member becoming MASTER pulls the others to MASTER (vrrp_sync_master);
* a MASTER member going BACKUP (a better router's advert) sends the others to BACKUP
  without a priority-0 advert (vrrp_sync_backup); so does a member leaving FAULT;
* the first member whose own tracked item fails sends the others to FAULT, masters with a
  priority-0 advert (vrrp_sync_fault); members come out of FAULT only when no member's own
  tracking holds it down (try_up_instance counts num_member_fault);
* a MASTER member that hears a lower-priority advert refreshes the other members' ARP
  caches too (garp_lower_prio_repeat);
* the group is STOP once every member has stopped (notify_shutdown).

Each change of the group's state is one GroupStateChanged (notify_master/backup/fault/stop
of the group, ``notify`` with ``GROUP NAME STATE 0``, the FIFO's ``GROUP "NAME" STATE 0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hagate.vrrp.actions import GroupStateChanged
from hagate.vrrp.state import State
from hagate.vrrp.tracking import PRIORITY_OWNER

if TYPE_CHECKING:
    from hagate.vrrp.machine import VrrpMachine


class SyncGroup:
    """One vrrp_sync_group and its member machines (by instance name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = State.INITIALIZE
        self._members: dict[str, VrrpMachine] = {}
        self._forcing = False  # inside a sync_*: the members we move do not re-trigger

    # ---- membership -------------------------------------------------------------------

    @property
    def members(self) -> tuple[VrrpMachine, ...]:
        return tuple(self._members.values())

    def join(self, machine: VrrpMachine) -> None:
        """Add ``machine`` (named by its params) before it starts; replaces a machine of
        the same name (a restarted instance)."""
        name = machine.params.name
        if not name:
            raise ValueError("a sync group member needs its instance name in params.name")
        old = self._members.get(name)
        if old is not None and old is not machine:
            old.sync = None
        self._members[name] = machine
        machine.sync = self
        if all(m.state is State.INITIALIZE for m in self._members.values()):
            self.state = State.INITIALIZE

    def leave(self, name: str) -> None:
        machine = self._members.pop(name, None)
        if machine is not None:
            machine.sync = None

    def _others(self, member: VrrpMachine) -> list[VrrpMachine]:
        return [m for m in self._members.values() if m is not member]

    # ---- gates the members consult ---------------------------------------------------

    @staticmethod
    def _own_fault(m: VrrpMachine) -> bool:
        return m.state not in (State.INITIALIZE, State.STOP) and bool(m.tracker.faulted())

    def holds_in_fault(self, member: VrrpMachine) -> bool:
        """Another member's own tracked item is down (keepalived num_member_fault)."""
        return any(self._own_fault(m) for m in self._others(member))

    def fault_reason(self, member: VrrpMachine) -> str:
        down = [m.params.name for m in self._others(member) if self._own_fault(m)]
        return f"vrrp_sync_group {self.name}: {', '.join(down)} in FAULT"

    def owner_start(self, member: VrrpMachine) -> bool:
        """May an address owner with ``state MASTER`` go straight to MASTER? Only when the
        group is (or starts) MASTER: every member an owner that wants MASTER."""
        if self.state is State.MASTER:
            return True
        return all(
            m.params.wants_master and m.base_priority == PRIORITY_OWNER
            for m in self._members.values()
        )

    def can_goto_master(self, member: VrrpMachine) -> bool:
        """keepalived vrrp_sync_can_goto_master."""
        if self.state is State.MASTER:
            return True
        return all(m.state is State.MASTER or m.wants_group_master for m in self._others(member))

    # ---- the members' transitions (keepalived VRRP_TSM and try_up/down_instance) --------

    def member_changing(self, member: VrrpMachine, old: State, new: State) -> None:
        """Before ``member``'s own notification: the group's start is announced first."""
        if self._forcing or self.state is not State.INITIALIZE or old is not State.INITIALIZE:
            return
        if new is State.FAULT:
            self._set(member, State.FAULT, f"{member.params.name} started in FAULT")
        elif new is State.BACKUP:
            self._set(member, State.BACKUP, "start-up")
        elif new is State.MASTER:
            # Every member an owner (owner_start): keepalived starts the group MASTER and
            # sends no group notification for it.
            self.state = State.MASTER

    def member_changed(self, member: VrrpMachine, now: float, old: State, new: State) -> None:
        if self._forcing:
            return
        name = member.params.name
        if new is State.MASTER:
            self._sync(member, now, State.MASTER, f"{name} became MASTER")
        elif new is State.BACKUP and old in (State.MASTER, State.FAULT):
            self._sync(member, now, State.BACKUP, f"{name} went {old} -> BACKUP")
        elif new is State.FAULT and member.tracker.faulted():
            if not self.holds_in_fault(member):  # the first member down
                self._sync(member, now, State.FAULT, f"{name} is in FAULT")
        elif new is State.STOP and all(m.state is State.STOP for m in self._members.values()):
            self._set(member, State.STOP, "every member stopped")

    def lower_prio_seen(self, member: VrrpMachine, now: float) -> None:
        for m in self._others(member):
            m.lower_prio_garp(now)

    def _sync(self, member: VrrpMachine, now: float, target: State, why: str) -> None:
        if self.state is target:
            return
        reason = f"vrrp_sync_group {self.name}: {why}"
        self._forcing = True
        try:
            for m in self._others(member):
                if m.state is target or m.state in (State.INITIALIZE, State.STOP):
                    continue
                if target is State.MASTER:
                    m.sync_to_master(now, reason)
                elif target is State.BACKUP:
                    m.sync_to_backup(now, reason)
                else:
                    m.sync_to_fault(now, reason)
        finally:
            self._forcing = False
        self._set(member, target, why)

    def _set(self, member: VrrpMachine, new: State, why: str) -> None:
        old, self.state = self.state, new
        member.emit(GroupStateChanged(self.name, old, new, why))
