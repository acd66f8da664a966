"""Notify scripts and FIFOs with keepalived's calling contract (vrrp_notify.c, keepalived.conf(5)).

On entering a state an instance runs ``notify_master`` / ``notify_backup`` / ``notify_fault``
/ ``notify_stop`` as configured (no extra arguments), then ``notify`` with four more:
``INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <effective priority>``, then writes its FIFO
line. A vrrp_sync_group does the same with ``GROUP <name> <state> 0``. A master that hears a
lower-priority advert runs ``notify_master_rx_lower_pri`` and writes ``MASTER_RX_LOWER_PRI``;
with ``notify_priority_changes`` a change of effective priority writes ``MASTER_PRIORITY`` or
``BACKUP_PRIORITY`` (FIFO only, as keepalived). Scripts are exec'd without a shell, in their
own process group, and never waited for, except ``notify_stop`` at shutdown, which gets one
second (keepalived: ``system_call_script(..., TIMER_HZ, ...)``).

Order: the machines of a sync group queue their notifications on several instances; each
carries the sequence number of its emission, and the notifier carries out everything one
event produced (one loop callback) in that order, which is keepalived's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.daemon.cmdline import ScriptCommand
from hagate.daemon.fifo import FifoSpec, FifoWriter, fifo_line
from hagate.daemon.scripts import resolve_command, run_command
from hagate.vrrp.actions import GroupStateChanged, MasterRxLowerPri, PriorityChanged, RunNotify
from hagate.vrrp.state import State

if TYPE_CHECKING:
    from hagate.daemon.plan import InstancePlan
    from hagate.vrrp.machine import VrrpMachine

NotifyAction = RunNotify | GroupStateChanged | PriorityChanged | MasterRxLowerPri

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 1.0
NOTIFY_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """The notify scripts of one instance (None where not configured)."""

    master: ScriptCommand | None = None
    backup: ScriptCommand | None = None
    fault: ScriptCommand | None = None
    stop: ScriptCommand | None = None
    generic: ScriptCommand | None = None  # ``notify``
    deleted: ScriptCommand | None = None  # ``notify_deleted SCRIPT``
    master_rx_lower_pri: ScriptCommand | None = None
    notify_deleted: bool = False  # removed at reload: DELETED (else keepalived's FAULT)
    priority_changes: bool = False  # notify_priority_changes: FIFO lines on priority changes

    def for_state(self, state: str) -> ScriptCommand | None:
        return {
            "MASTER": self.master,
            "BACKUP": self.backup,
            "FAULT": self.fault,
            "STOP": self.stop,
            "DELETED": self.deleted,
        }.get(state)


def notify_calls(
    spec: NotifySpec, instance: str, state: str, priority: int, kind: str = "INSTANCE"
) -> list[ScriptCommand]:
    """The commands keepalived runs when ``instance`` (or a GROUP) enters ``state``."""
    calls: list[ScriptCommand] = []
    specific = spec.for_state(state)
    if specific is not None:
        calls.append(specific)
    if spec.generic is not None:
        g = spec.generic
        argv = (*g.argv, kind, instance, state, str(priority))
        calls.append(ScriptCommand(argv=argv, user=g.user, group=g.group))
    return calls


def fifo_event(action: NotifyAction, name: str, state: State, priority: int) -> bytes:
    """The FIFO line keepalived writes for ``action`` of instance ``name`` (or its group)."""
    if isinstance(action, GroupStateChanged):
        return fifo_line("GROUP", action.group, str(action.new), 0)
    if isinstance(action, MasterRxLowerPri):
        return fifo_line("INSTANCE", name, "MASTER_RX_LOWER_PRI", priority)
    if isinstance(action, PriorityChanged):
        word = "MASTER_PRIORITY" if state is State.MASTER else "BACKUP_PRIORITY"
        return fifo_line("INSTANCE", name, word, action.new)
    return fifo_line("INSTANCE", name, str(action.state), priority)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _distinct(specs: list[FifoSpec], say: bool = False) -> list[FifoSpec]:
    """One FIFO per path, the first configured (keepalived: the global one's script)."""
    seen: set[str] = set()
    out: list[FifoSpec] = []
    for spec in specs:
        if spec.path in seen:
            if say:
                log.info("notify FIFO %s is configured twice - using it once", spec.path)
            continue
        seen.add(spec.path)
        out.append(spec)
    return out


class Notifier:
    """Launches notify scripts in the background and remembers them for shutdown."""

    def __init__(self, default_user: str | None = None) -> None:
        self._default_user = default_user
        self._tasks: set[asyncio.Task[None]] = set()
        self._fifos: list[FifoWriter] = []
        self._pending: list[tuple[int, bytes | None, list[ScriptCommand], str, str]] = []
        self._flush_at: asyncio.Handle | None = None
        self.launched = 0
        self.failed = 0

    # ---- FIFOs ------------------------------------------------------------------------

    def open_fifos(self, specs: list[FifoSpec]) -> None:
        """Open the configured FIFOs (one per distinct path), closing any open ones."""
        self.close()
        loop = _running_loop()
        for spec in _distinct(specs, say=True):
            writer = FifoWriter(spec)
            if writer.open(loop, self._default_user):
                self._fifos.append(writer)

    def reopen_fifos(self, specs: list[FifoSpec]) -> None:
        """A reload: FIFOs whose path, owner and script did not change stay open (their
        reader script keeps running); the others are closed, the new ones opened."""
        if [w.spec for w in self._fifos] == _distinct(specs):
            return
        self.flush()  # what was queued belongs to the old FIFOs
        keep = {w.spec: w for w in self._fifos}
        wanted = _distinct(specs)
        for writer in self._fifos:
            if writer.spec not in wanted:
                writer.close()
        self._fifos = []
        loop = _running_loop()
        for spec in wanted:
            writer = keep.get(spec) or FifoWriter(spec)
            if writer is keep.get(spec) or writer.open(loop, self._default_user):
                self._fifos.append(writer)
        log.info("notify FIFOs now: %s", ", ".join(w.spec.path for w in self._fifos) or "none")

    def close(self) -> None:
        self.flush()
        for writer in self._fifos:
            writer.close()
        self._fifos.clear()

    # ---- events -----------------------------------------------------------------------

    def on_action(self, action: NotifyAction, plan: InstancePlan, machine: VrrpMachine) -> None:
        """Carry out one notification the machine of ``plan`` queued (in ``seq`` order)."""
        name, priority = plan.name, machine.effective_priority
        spec = plan.notify
        line: bytes | None = None
        calls: list[ScriptCommand] = []
        label, state = name, ""
        if isinstance(action, RunNotify):
            state = str(action.state)
            if action.deleted:  # keepalived: DELETED with notify_deleted, else FAULT
                state = "DELETED" if spec.notify_deleted else "FAULT"
            calls = notify_calls(spec, name, state, priority)
            line = fifo_line("INSTANCE", name, state, priority)
        elif isinstance(action, GroupStateChanged):
            log.info(
                "VRRP_Group(%s) %s -> %s: %s", action.group, action.old, action.new, action.reason
            )
            label, state = action.group, str(action.new)
            if plan.group_notify is not None:
                calls = notify_calls(plan.group_notify, action.group, state, 0, "GROUP")
            line = fifo_event(action, name, machine.state, priority)
        elif isinstance(action, MasterRxLowerPri):
            state = "MASTER_RX_LOWER_PRI"
            if spec.master_rx_lower_pri is not None:
                calls = [spec.master_rx_lower_pri]
            line = fifo_event(action, name, machine.state, priority)
        elif spec.priority_changes and machine.state in (State.MASTER, State.BACKUP):
            line = fifo_event(action, name, machine.state, priority)
        else:
            return
        self._queue(action.seq, line, calls, label, state)

    def notify(self, spec: NotifySpec, instance: str, state: str, priority: int) -> None:
        """Run ``instance``'s scripts for ``state`` and write its FIFO line, now."""
        line = fifo_line("INSTANCE", instance, state, priority)
        self._queue(0, line, notify_calls(spec, instance, state, priority), instance, state)
        self.flush()

    def _queue(
        self, seq: int, line: bytes | None, calls: list[ScriptCommand], label: str, state: str
    ) -> None:
        self._pending.append((seq, line, calls, label, state))
        if self._flush_at is None:
            try:
                self._flush_at = asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        """Everything queued so far, in emission order: FIFO lines, then scripts."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        pending, self._pending = self._pending, []
        pending.sort(key=lambda p: p[0])
        for _, line, calls, label, state in pending:
            if line is not None:
                for writer in self._fifos:
                    writer.write(line)
            if calls:
                self._launch(calls, label, state)

    def _launch(self, calls: list[ScriptCommand], label: str, state: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closing after the loop: nothing can run any more
            return
        timeout = STOP_TIMEOUT_S if state == "STOP" else None
        for cmd in calls:
            task = loop.create_task(self._run(cmd, timeout, label, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, cmd: ScriptCommand, timeout: float | None, instance: str, state: str
    ) -> None:
        path = resolve_command(cmd.argv[0])
        if path is None:
            self.failed += 1
            log.warning(
                "(%s) notify script for %s not found/executable: %s", instance, state, cmd.argv[0]
            )
            return
        self.launched += 1
        outcome, code = await run_command(
            (path, *cmd.argv[1:]),
            timeout,
            cmd.user or self._default_user,
            cmd.group,
        )
        if outcome == "exec_failed":
            self.failed += 1
            log.warning("(%s) cannot run notify script %s", instance, cmd.argv[0])
        elif outcome == "timed_out":
            log.warning("(%s) notify script %s killed after %.0f s", instance, cmd.argv[0], timeout)
        log.debug("(%s) notify %s %s: %s %s", instance, state, cmd.argv[0], outcome, code)

    async def drain(self, timeout: float = STOP_TIMEOUT_S + 0.5) -> None:
        """Wait (bounded) for running notify scripts; used at shutdown for notify_stop."""
        self.flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
