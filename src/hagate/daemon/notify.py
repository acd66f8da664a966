"""Notify scripts with keepalived's calling contract (vrrp_notify.c, keepalived.conf(5)).

On entering a state an instance runs ``notify_master`` / ``notify_backup`` / ``notify_fault``
/ ``notify_stop`` as configured (no extra arguments), then ``notify`` with four more:
``INSTANCE <name> <MASTER|BACKUP|FAULT|STOP> <effective priority>``. They are exec'd without
a shell, in their own process group, and never waited for, except ``notify_stop`` at
shutdown, which gets one second (keepalived: ``system_call_script(..., TIMER_HZ, ...)``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from hagate.daemon.cmdline import ScriptCommand
from hagate.daemon.scripts import resolve_command, run_command

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

    def for_state(self, state: str) -> ScriptCommand | None:
        return {
            "MASTER": self.master,
            "BACKUP": self.backup,
            "FAULT": self.fault,
            "STOP": self.stop,
        }.get(state)


def notify_calls(spec: NotifySpec, instance: str, state: str, priority: int) -> list[ScriptCommand]:
    """The commands keepalived runs when ``instance`` enters ``state``, in order."""
    calls: list[ScriptCommand] = []
    specific = spec.for_state(state)
    if specific is not None:
        calls.append(specific)
    if spec.generic is not None:
        g = spec.generic
        argv = (*g.argv, "INSTANCE", instance, state, str(priority))
        calls.append(ScriptCommand(argv=argv, user=g.user, group=g.group))
    return calls


class Notifier:
    """Launches notify scripts in the background and remembers them for shutdown."""

    def __init__(self, default_user: str | None = None) -> None:
        self._default_user = default_user
        self._tasks: set[asyncio.Task[None]] = set()
        self.launched = 0
        self.failed = 0

    def notify(self, spec: NotifySpec, instance: str, state: str, priority: int) -> None:
        loop = asyncio.get_running_loop()
        timeout = STOP_TIMEOUT_S if state == "STOP" else None
        for cmd in notify_calls(spec, instance, state, priority):
            task = loop.create_task(self._run(cmd, timeout, instance, state))
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
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
