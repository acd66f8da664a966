"""The VRRP state machine of one instance, sans-IO (RFC 3768 / RFC 9568 §6.4, as keepalived).

Every input carries ``now`` (monotonic seconds); outputs are queued :mod:`actions` that the
driver drains. The driver calls :meth:`VrrpMachine.handle_timer` at :meth:`get_timer`.
Where keepalived 2.2.7 and the RFCs differ, keepalived is followed unless
``params.strict_rfc``; docs/vrrp-state-machine.md lists the differences.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.vrrp.actions import (
    Action,
    AddVips,
    MasterRxLowerPri,
    PriorityChanged,
    RemoveVips,
    RunNotify,
    SendAdvert,
    SendGratuitous,
    StateChanged,
)
from hagate.vrrp.advert import Advert, IPAddress
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.timers import US_PER_CS, US_PER_S, skew_time_us
from hagate.vrrp.tracking import PRIORITY_OWNER, PRIORITY_STOP, Tracker, effective_priority

if TYPE_CHECKING:
    from hagate.vrrp.syncgroup import SyncGroup


class MachineError(RuntimeError):
    """The machine was driven out of order (e.g. start() twice)."""


@dataclass(slots=True)
class Counters:
    """Per-instance statistics, in the spirit of keepalived's vrrp stats / RFC 6527."""

    adverts_received: int = 0
    adverts_ignored: int = 0
    adverts_sent: int = 0
    priority_zero_received: int = 0
    priority_zero_sent: int = 0
    priority_zero_unanswered: int = 0  # answers held back by the rate limit
    became_master: int = 0
    released_master: int = 0


def _secs(us: int) -> float:
    return us / US_PER_S


class VrrpMachine:
    """One VRRP instance (one VRID on one interface)."""

    def __init__(self, params: VrrpParams) -> None:
        self.params = params
        self.state = State.INITIALIZE
        self.base_priority = params.priority
        self.tracker = Tracker(params.tracked)
        self.effective_priority = effective_priority(self.base_priority, self.tracker.adjustment())
        # RFC 9568 §6.1 Master_Adver_Interval; v2 never learns it (RFC 3768 has none).
        self.master_adver_int_cs = params.advert_int_cs
        self.master_address: IPAddress | None = None  # last accepted advert's source
        self.master_priority = 0
        self.counters = Counters()
        self._actions: deque[Action] = deque()
        self._down_adverts = params.effective_down_timer_adverts
        self._ms_down_us = 0  # keepalived ms_down_timer: the current down timer length
        self._deadline: float | None = None  # Adver_Timer (MASTER) / Master_Down_Timer
        self._garp_delay_at: float | None = None  # second GARP round after becoming MASTER
        self._garp_lower_at: float | None = None  # second round after a lower-priority advert
        self._garp_refresh_at: float | None = None  # periodic refresh while MASTER
        self._preempt_time: float | None = None  # keepalived preempt_time
        self._since: float = 0.0  # when the down timer was last (re)started
        self._stepped_down: IPAddress | None = None  # priority-0 advert source
        self._ignored: tuple[IPAddress, int] | None = None  # lower-priority master we ignore
        self._vips = params.vips
        self._p0_answered_at: float | None = None  # last answer to a priority-0 advert
        # vrrp_sync_group coupling (hagate.vrrp.syncgroup), None when the instance runs alone.
        self.sync: SyncGroup | None = None
        # keepalived wantstate MASTER while BACKUP: the down timer expired but the group held
        # us back (vrrp_sync_can_goto_master); cleared by the next acceptable advert.
        self.wants_group_master = False
        self._delayed_until = 0.0  # keepalived vrrp_delayed_start_time
        self._deleted = False  # stopping because a reload removed the instance

    # ---- derived timers -------------------------------------------------------------

    @property
    def skew_time(self) -> float:
        """Skew_Time for the current effective priority and Master_Adver_Interval."""
        return _secs(self._skew_us(self.effective_priority))

    @property
    def master_down_interval(self) -> float:
        """Master_Down_Interval (keepalived: down_timer_adverts * interval + skew)."""
        return _secs(self._master_down_us())

    def _skew_us(self, priority: int) -> int:
        return skew_time_us(self.params.version, priority, self.master_adver_int_cs)

    def _master_down_us(self) -> int:
        return self._down_adverts * self.master_adver_int_cs * US_PER_CS + self._skew_us(
            self.effective_priority
        )

    def _down_from(self, now: float) -> float:
        """Where a BACKUP down timer starts: now, or the end of vrrp_startup_delay
        (keepalived vrrp_init_instance_sands)."""
        until = self._delayed_until
        if until > now:
            return until
        self._delayed_until = 0.0
        return now

    # ---- outputs --------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next absolute deadline at which :meth:`handle_timer` must be called."""
        best = self._deadline
        for t in (self._garp_delay_at, self._garp_lower_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def next_action(self) -> Action | None:
        """Pop the oldest queued action, or None."""
        return self._actions.popleft() if self._actions else None

    def pending(self) -> bool:
        """True when actions are queued (a sync group may queue them for a peer)."""
        return bool(self._actions)

    def actions(self) -> list[Action]:
        """Drain all queued actions, oldest first."""
        out = list(self._actions)
        self._actions.clear()
        return out

    def _emit(self, action: Action) -> None:
        self._actions.append(action)

    def _advert(self, priority: int) -> Advert:
        p = self.params
        return Advert(
            p.version, p.vrid, priority, p.advert_int_cs, self._vips, p.auth_type, p.auth_data
        )

    def _send_advert(self, priority: int) -> None:
        self.counters.adverts_sent += 1
        if priority == PRIORITY_STOP:
            self.counters.priority_zero_sent += 1
        self._emit(SendAdvert(self._advert(priority)))

    def _gratuitous(self, repeat: int) -> None:
        if self._vips and repeat > 0:
            self._emit(SendGratuitous(self._vips, repeat))

    def _change_state(self, new: State, reason: str, now: float) -> None:
        old, self.state = self.state, new
        group = self.sync
        if group is not None:
            group.member_changing(self, old, new)  # keepalived: a group's first notify first
        self._emit(RunNotify(new, deleted=new is State.STOP and self._deleted))
        self._emit(StateChanged(old, new, reason))
        if group is not None:
            group.member_changed(self, now, old, new)

    def emit(self, action: Action) -> None:
        """Queue an action on this instance's behalf (its sync group's notifications)."""
        self._actions.append(action)

    # ---- inputs ---------------------------------------------------------------------

    def start(self, now: float, delay: float | None = None) -> None:
        """Leave INITIALIZE (RFC 9568 §6.4.1; keepalived vrrp_init_state).

        ``delay`` (default ``params.startup_delay``; a driver passes 0 for an instance
        added at reload): keepalived's vrrp_startup_delay. The instance starts at once, but
        while the delay runs every BACKUP down timer counts from its end, so a booting node
        neither takes over nor preempts before it has passed.
        """
        if self.state is not State.INITIALIZE:
            raise MachineError(f"start() called in state {self.state}, not INITIALIZE")
        wait = self.params.startup_delay if delay is None else delay
        if wait > 0:
            self._delayed_until = now + wait
        faulted = self.tracker.faulted()
        if faulted:
            self._change_state(State.FAULT, f"startup: tracked {', '.join(faulted)} down", now)
            return
        group = self.sync
        if group is not None and group.holds_in_fault(self):
            self._change_state(State.FAULT, f"startup: {group.fault_reason(self)}", now)
            return
        owner_start = group.owner_start(self) if group is not None else True
        if self._delayed_until > now and self.base_priority == PRIORITY_OWNER:
            # keepalived: the owner "times out from BACKUP very quickly", after the delay
            self._ms_down_us = 0
            self._enter_backup(now, f"startup: address owner, vrrp_startup_delay {wait:g} s")
            return
        if self.params.wants_master and self.base_priority == PRIORITY_OWNER and owner_start:
            self._become_master(now, "startup: address owner (priority 255)")
            return
        if self.params.wants_master:
            # keepalived: `state MASTER` below 255 waits one advert interval plus the
            # minimum skew, to let an existing master show itself, then takes over.
            self._ms_down_us = self.master_adver_int_cs * US_PER_CS + self._skew_us(255)
            why = "startup (state MASTER): waiting one advert interval for a master"
        else:
            self._ms_down_us = self._master_down_us()
            why = "startup: waiting Master_Down_Interval for a master"
        self._enter_backup(now, f"{why}, {_secs(self._ms_down_us):.3f} s")

    def receive_advert(self, now: float, advert: Advert, source: IPAddress) -> None:
        """An advert for this VRID arrived from ``source`` (already validated by the codec)."""
        state = self.state
        self.counters.adverts_received += 1
        p = self.params
        if (
            (state is not State.BACKUP and state is not State.MASTER)
            or advert.vrid != p.vrid
            or advert.version != p.version
            or source == p.primary_address  # our own advert looped back
            # RFC 3768 §7.1: a v2 advert with another Adver Int MUST be discarded.
            or (p.version == 2 and advert.advert_int_cs != self.master_adver_int_cs)
        ):
            self.counters.adverts_ignored += 1
            return
        if advert.priority == PRIORITY_STOP:
            self.counters.priority_zero_received += 1
        if state is State.BACKUP:
            self._backup_rx(now, advert, source)
        else:
            self._master_rx(now, advert, source)

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that is due at ``now``."""
        deadline = self._deadline
        if deadline is not None and deadline <= now:
            if self.state is State.BACKUP:
                self._backup_timeout(now)
            elif self.state is State.MASTER:
                self._master_tick(now)
        if self._garp_delay_at is not None and self._garp_delay_at <= now:
            self._garp_delay_at = None
            self._gratuitous(self.params.garp_master_repeat)
        if self._garp_lower_at is not None and self._garp_lower_at <= now:
            self._garp_lower_at = None
            self._gratuitous(self.params.effective_garp_lower_prio_repeat)

    def set_tracked(self, now: float, name: str, ok: bool) -> None:
        """A tracked script/interface changed; unknown names raise ValueError."""
        if not self.tracker.set(name, ok):
            return
        item = self.tracker.item(name)
        word = "recovered" if ok else "failed"
        if item.weight:
            self._update_priority(f"tracked {name} {word} (weight {item.weight:+d})")
        if self.state in (State.INITIALIZE, State.STOP):
            return
        faulted = self.tracker.faulted()
        if faulted and self.state is not State.FAULT:
            self._enter_fault(now, f"tracked {name} {word} (weight 0)")
        elif not faulted and self.state is State.FAULT:
            group = self.sync
            if group is not None and group.holds_in_fault(self):
                return  # keepalived try_up_instance: another member is still down
            self._leave_fault(now, f"tracked {name} {word}: no tracked item down")

    def set_tracked_level(self, now: float, name: str, level: int) -> None:
        """A weighted track_file's number changed: level x weight moves the priority (it
        never faults the instance; keepalived track_file.c). Unknown names raise."""
        if self.tracker.set_level(name, level):
            item = self.tracker.item(name)
            self._update_priority(
                f"tracked {name} value {level} (weight {item.weight:+d}"
                f"{' reverse' if item.reverse else ''})"
            )

    def vip_lost(self, now: float, address: IPAddress) -> None:
        """One of our virtual addresses was deleted from under us (RTM_DELADDR, e.g. an
        operator's ``ip addr del``). keepalived 2.2.7 (set_vrrp_backup): a master leaves
        MASTER at once (priority-0 advert, the other VIPs removed) and waits only Skew_Time
        as a backup, so that it takes the VIPs back quickly unless a better router answers."""
        if self.state is not State.MASTER:
            return
        self._send_advert(PRIORITY_STOP)
        self._release_vips()
        self.counters.released_master += 1
        self.master_address = None
        self._ms_down_us = self._skew_us(self.effective_priority)
        self._enter_backup(
            now,
            f"virtual address {address} was deleted: releasing, back as master after "
            f"Skew_Time {_secs(self._ms_down_us):.3f} s unless a better router answers",
        )

    def shutdown(self, now: float, deleted: bool = False) -> None:
        """Stop: a master sends priority 0 and releases the VIPs (RFC 9568 §6.4.3).

        ``deleted``: a reload removed the instance; its notification says so (keepalived
        notifies DELETED with ``notify_deleted``, FAULT without)."""
        if self.state is State.STOP:
            return
        if self.state is State.MASTER:
            self._send_advert(PRIORITY_STOP)
            self._release_vips()
        self._clear_timers()
        self._deleted = deleted
        self._change_state(State.STOP, "removed at reload" if deleted else "shutdown", now)

    def reconfigure(self, now: float, params: VrrpParams, reason: str = "reload") -> None:
        """Apply a reloaded configuration in place, beyond keepalived (whose SIGHUP can move
        a master to BACKUP): the state is kept unless the new settings demand otherwise.

        The VRID, version and address family must stay (a driver restarts the instance for
        those; MachineError here). A master adds and removes the VIPs that changed (GARP for
        the added ones) and, if what it advertises changed, sends at once at the new
        interval; a backup keeps its master and re-times its down timer from the last
        advert with the new priority and interval. Tracked items that stay keep their
        status; a new weight-0 item that is down moves the instance to FAULT, a FAULT whose
        cause is gone leaves it. Priority changes are reported as PriorityChanged; the next
        advert decides elections as usual (a higher priority with preemption takes over).
        """
        old = self.params
        if (params.vrid, params.version, params.primary_address.version) != (
            old.vrid,
            old.version,
            old.primary_address.version,
        ):
            raise MachineError("reconfigure cannot change the VRID, version or family")
        kept = {i.name: self.tracker.is_ok(i.name) for i in old.tracked}
        levels = {i.name: self.tracker.level(i.name) for i in old.tracked}
        self.params = params
        self.tracker = Tracker(params.tracked)
        for item in params.tracked:
            if item.name in kept:
                self.tracker.set(item.name, kept[item.name])
            level = levels.get(item.name)
            if item.scaled and level is not None:
                self.tracker.set_level(item.name, level)
        self._down_adverts = params.effective_down_timer_adverts
        old_advert = self._advert(self.effective_priority)
        old_vips, self._vips = self._vips, params.vips
        if params.priority != old.priority:
            self.base_priority = params.priority
        self._update_priority(f"{reason}: priority {old.priority} -> {params.priority}")
        state = self.state
        if state in (State.INITIALIZE, State.STOP):
            return
        faulted = self.tracker.faulted()
        if faulted and state is not State.FAULT:
            self._enter_fault(now, f"{reason}: tracked {', '.join(faulted)} down")
            return
        if not faulted and state is State.FAULT:
            group = self.sync
            if group is None or not group.holds_in_fault(self):
                self._leave_fault(now, f"{reason}: no tracked item down")
            return
        if state is State.MASTER:
            removed = tuple(v for v in old_vips if v not in params.vips)
            added = tuple(v for v in params.vips if v not in old_vips)
            if removed:
                self._emit(RemoveVips(removed))
            if added:
                self._emit(AddVips(added))
                self._emit(SendGratuitous(added, params.garp_master_repeat))
            self.master_adver_int_cs = params.advert_int_cs
            self.master_priority = self.effective_priority
            if self._advert(self.effective_priority) != old_advert:
                self._send_advert(self.effective_priority)
                self._deadline = now + params.advert_int
            if params.garp_master_refresh <= 0:
                self._garp_refresh_at = None
            elif self._garp_refresh_at is None:
                self._garp_refresh_at = now + params.garp_master_refresh
        elif state is State.BACKUP:
            if params.version == 2 or self.master_address is None:
                self.master_adver_int_cs = params.advert_int_cs  # v3 keeps the one it learnt
            if self._stepped_down is None:  # (after a priority-0 advert: Skew_Time runs)
                self._ms_down_us = self._master_down_us()
                self._deadline = max(self._since + _secs(self._ms_down_us), now)

    # ---- driven by a vrrp_sync_group (keepalived vrrp_sync.c) -------------------------

    def sync_to_master(self, now: float, reason: str) -> None:
        """vrrp_sync_master: a peer became MASTER; follow it (from BACKUP or FAULT)."""
        if self.state in (State.BACKUP, State.FAULT) and not self.tracker.faulted():
            self._become_master(now, reason)

    def sync_to_backup(self, now: float, reason: str) -> None:
        """vrrp_sync_backup: leave MASTER without a priority-0 advert (the peer that moved
        first is already BACKUP), or leave FAULT, and wait a full Master_Down_Interval."""
        if self.state is State.MASTER:
            self._release_vips()
            self.counters.released_master += 1
        elif self.state is not State.FAULT or self.tracker.faulted():
            return
        self.master_adver_int_cs = self.params.advert_int_cs
        self.master_address = None
        self.wants_group_master = False
        self._ms_down_us = self._master_down_us()
        self._enter_backup(now, reason)

    def sync_to_fault(self, now: float, reason: str) -> None:
        """vrrp_sync_fault: a peer's tracked item failed; a master sends priority 0 and
        drops its VIPs so that the other node takes the whole group over at once."""
        if self.state in (State.MASTER, State.BACKUP):
            self._enter_fault(now, reason)

    def lower_prio_garp(self, now: float) -> None:
        """keepalived: a sync-group peer heard a lower-priority advert; refresh our
        neighbours' caches too (garp_lower_prio_repeat / _delay of this instance)."""
        p = self.params
        repeat = p.effective_garp_lower_prio_repeat
        if self.state is not State.MASTER or not repeat or not self._vips:
            return
        self._gratuitous(repeat)
        if p.effective_garp_lower_prio_delay > 0:
            self._garp_lower_at = now + p.effective_garp_lower_prio_delay

    # ---- BACKUP (RFC 9568 §6.4.2, keepalived vrrp_state_backup) ----------------------

    def _enter_backup(self, now: float, reason: str) -> None:
        self._clear_timers()
        self._deadline = self._down_from(now) + _secs(self._ms_down_us)
        self._since = now
        self._preempt_time = None
        self._stepped_down = None
        self._ignored = None
        self._change_state(State.BACKUP, reason, now)

    def _backup_rx(self, now: float, advert: Advert, source: IPAddress) -> None:
        prio = advert.priority
        eff = self.effective_priority
        if prio == PRIORITY_STOP:
            # The master is stepping down: take over after Skew_Time.
            self._ms_down_us = self._skew_us(eff)
            self._deadline = self._down_from(now) + _secs(self._ms_down_us)
            self._stepped_down = source
            return
        delay = self.params.effective_preempt_delay
        if (
            not self.params.preempt
            or prio >= eff
            or (delay and (self._preempt_time is None or self._preempt_time > now))
        ):
            if self.params.version == 3 and advert.advert_int_cs != self.master_adver_int_cs:
                self.master_adver_int_cs = advert.advert_int_cs  # RFC 9568 §6.4.2
            self._ms_down_us = self._master_down_us()
            self._deadline = self._down_from(now) + _secs(self._ms_down_us)
            self._since = now
            self.master_address = source
            self.master_priority = prio
            self._stepped_down = None
            self._ignored = None
            self.wants_group_master = False  # keepalived: "we want to be in BACKUP state"
            if delay:
                if prio >= eff:
                    self._preempt_time = None
                elif self._preempt_time is None:
                    self._preempt_time = now + delay
            return
        # Lower priority with preemption: discard, leaving the down timer running.
        self.counters.adverts_ignored += 1
        self._ignored = (source, prio)

    def _backup_timeout(self, now: float) -> None:
        group = self.sync
        if group is not None and not group.can_goto_master(self):
            # keepalived vrrp_state_goto_master: wantstate MASTER, held in BACKUP until
            # every member wants MASTER; the down timer runs again meanwhile.
            self.wants_group_master = True
            self._ms_down_us = self._master_down_us()
            self._deadline = self._down_from(now) + _secs(self._ms_down_us)
            return
        waited = now - self._since
        if self._stepped_down is not None:
            reason = (
                f"priority 0 advert from {self._stepped_down}: master stepped down "
                f"(took over after Skew_Time {_secs(self._ms_down_us):.3f} s)"
            )
        elif self._ignored is not None:
            src, prio = self._ignored
            reason = (
                f"preempting lower priority master {src} ({prio} < {self.effective_priority}):"
                f" no acceptable advert for {waited:.2f} s"
            )
        elif self.master_address is not None:
            reason = (
                f"master down timer expired: no advert from {self.master_address}"
                f" for {waited:.2f} s"
            )
        else:
            reason = f"master down timer expired: no advert for {waited:.2f} s"
        self._become_master(now, reason)

    # ---- MASTER (RFC 9568 §6.4.3, keepalived vrrp_state_master_rx/tx) -----------------

    def _become_master(self, now: float, reason: str) -> None:
        p = self.params
        self._clear_timers()
        self.master_adver_int_cs = p.advert_int_cs
        self._deadline = now + p.advert_int
        self.master_address = p.primary_address
        self.master_priority = self.effective_priority
        self.counters.became_master += 1
        # keepalived sends the advert first so the old master drops the VIPs before GARP.
        self._send_advert(self.effective_priority)
        if self._vips:
            self._emit(AddVips(self._vips))
        self._gratuitous(p.garp_master_repeat)
        if p.garp_master_delay > 0 and p.garp_master_repeat > 0 and self._vips:
            self._garp_delay_at = now + p.garp_master_delay
        if p.garp_master_refresh > 0:
            self._garp_refresh_at = now + p.garp_master_refresh
        self.wants_group_master = False
        self._change_state(State.MASTER, reason, now)

    def _master_tick(self, now: float) -> None:
        p = self.params
        self._send_advert(self.effective_priority)
        if self._garp_refresh_at is not None and now >= self._garp_refresh_at:
            self._gratuitous(p.garp_master_refresh_repeat)
            self._garp_refresh_at = now + p.garp_master_refresh
        self._deadline = now + p.advert_int

    def _addr_cmp(self, source: IPAddress) -> int:
        """keepalived vrrp_saddr_cmp: the sender's primary address against ours."""
        ours = self.params.primary_address
        if source.version != ours.version:
            return 0
        return (int(source) > int(ours)) - (int(source) < int(ours))

    def _master_rx(self, now: float, advert: Advert, source: IPAddress) -> None:
        p = self.params
        prio = advert.priority
        eff = self.effective_priority
        cmp = self._addr_cmp(source)
        wins = prio > eff or (prio == eff and cmp > 0)
        if prio == PRIORITY_STOP:
            # RFC 9568 §6.4.3: send an advert at once and reset the Adver_Timer. keepalived
            # answers every one; a stream of forged priority-0 adverts would then make us
            # send as fast as it arrives, so we answer at most one per advert interval (a
            # real master steps down once) and otherwise keep our own Adver_Timer.
            last = self._p0_answered_at
            if last is not None and now - last < p.advert_int:
                self.counters.priority_zero_unanswered += 1
                return
            self._p0_answered_at = now
            self._send_advert(eff)
            self._deadline = now + p.advert_int
            return
        if p.effective_higher_prio_send_advert and wins:
            self._send_advert(eff)
        if prio == eff and cmp and eff == PRIORITY_OWNER:
            # keepalived: two address owners is a configuration error; step down to 254.
            self.base_priority = self.effective_priority = PRIORITY_OWNER - 1
            eff = self.effective_priority
            wins = True
        if wins:
            if p.version == 3:
                self.master_adver_int_cs = advert.advert_int_cs  # RFC 9568 §6.4.3
            if prio > eff:
                reason = f"higher priority advert from {source} ({prio} > {eff})"
            else:
                reason = (
                    f"equal priority advert from {source} ({prio}) with higher primary "
                    f"address ({source} > {p.primary_address})"
                )
            self._release_vips()
            self.counters.released_master += 1
            self._ms_down_us = self._master_down_us()
            self.master_address = source
            self.master_priority = prio
            self._enter_backup(now, reason)
            return
        if prio == eff and cmp == 0:
            return  # same priority from our own address (keepalived: a warning only)
        # Lower priority: RFC 9568 §6.4.3 discards it; keepalived answers with an advert at
        # once (forcing a new election; not with lower_prio_no_advert or vrrp_strict),
        # refreshes the neighbours' ARP caches (its own and its sync group peers'; not in
        # strict mode) and reports the event in every mode (notify_master_rx_lower_pri, the
        # FIFO's MASTER_RX_LOWER_PRI line).
        if not p.effective_lower_prio_no_advert:
            self._send_advert(eff)
            self._deadline = now + p.advert_int
        self.lower_prio_garp(now)
        if self.sync is not None:
            self.sync.lower_prio_seen(self, now)
        self._emit(MasterRxLowerPri(source, prio))

    def _release_vips(self) -> None:
        self._garp_delay_at = self._garp_lower_at = self._garp_refresh_at = None
        if self._vips:
            self._emit(RemoveVips(self._vips))

    # ---- FAULT (keepalived) and tracking ---------------------------------------------

    def _enter_fault(self, now: float, reason: str) -> None:
        if self.state is State.MASTER:
            # keepalived vrrp_state_leave_master: tell the backups at once, drop the VIPs.
            self._send_advert(PRIORITY_STOP)
            self._release_vips()
            self.counters.released_master += 1
        self._clear_timers()
        self.wants_group_master = False
        self._change_state(State.FAULT, reason, now)

    def _leave_fault(self, now: float, reason: str) -> None:
        # keepalived try_up_instance / vrrp_state_leave_fault
        self.master_adver_int_cs = self.params.advert_int_cs
        self.master_address = None
        group = self.sync
        owner_up = group.owner_start(self) if group is not None else True
        if self.params.wants_master and self.base_priority == PRIORITY_OWNER and owner_up:
            self._become_master(now, reason + "; address owner")
            return
        self._ms_down_us = self._master_down_us()
        self._enter_backup(now, reason)

    def _update_priority(self, reason: str) -> None:
        old = self.effective_priority
        new = effective_priority(self.base_priority, self.tracker.adjustment())
        if new == old:
            return
        old_skew = self._skew_us(old)
        self.effective_priority = new
        self._emit(PriorityChanged(old, new, reason))
        if self.state is State.BACKUP and self._deadline is not None:
            # keepalived vrrp_set_effective_priority: move the running down timer by the
            # change in Skew_Time.
            delta = self._skew_us(new) - old_skew
            self._ms_down_us += delta
            self._deadline += _secs(delta)

    def _clear_timers(self) -> None:
        self._deadline = None
        self._garp_delay_at = self._garp_lower_at = self._garp_refresh_at = None
