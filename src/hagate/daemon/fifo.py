"""notify_fifo / vrrp_notify_fifo: keepalived's one ordered notification channel.

keepalived 2.2.7 (lib/notify.c fifo_open, vrrp/vrrp_notify.c notify_fifo) writes one line per
event to a named pipe: ``INSTANCE "VI_1" MASTER 200``, ``GROUP "G1" BACKUP 0`` (a group's
priority is always 0), ``INSTANCE "VI_1" MASTER_PRIORITY 190`` / ``BACKUP_PRIORITY`` (with
``notify_priority_changes``), ``INSTANCE "VI_1" MASTER_RX_LOWER_PRI 200``. Notify scripts
are separate processes and may run out of order; the FIFO is written in event order, which
is why VyOS and others read it instead.

As keepalived: the FIFO is created (mode 0644, owned by the FIFO's user) unless it exists,
``*_fifo_script`` is started with the FIFO's path as its last argument and never waited for,
the FIFO is opened read-write and non-blocking (so that no reader is needed and a slow
reader never stalls the daemon: lines that do not fit are lost) and, if we created it,
unlinked at exit. ``notify_fifo`` and ``vrrp_notify_fifo`` naming the same path is one FIFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import stat
from dataclasses import dataclass

from hagate.daemon.cmdline import ScriptCommand
from hagate.daemon.scripts import resolve_command, run_command

log = logging.getLogger(__name__)

FIFO_MODE = stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH  # keepalived: 0644


def fifo_line(kind: str, name: str, state: str, priority: int) -> bytes:
    """One line exactly as keepalived writes it (``%s "%s" %s %d\\n``)."""
    return f'{kind} "{name}" {state} {priority}\n'.encode()


@dataclass(frozen=True, slots=True)
class FifoSpec:
    """One configured FIFO: its path, owner and the script that reads it."""

    path: str
    user: str | None = None
    group: str | None = None
    script: ScriptCommand | None = None


class FifoWriter:
    """One open notify FIFO."""

    def __init__(self, spec: FifoSpec) -> None:
        self.spec = spec
        self.fd: int | None = None
        self.created = False
        self.lines = 0
        self.lost = 0
        self._script: asyncio.Task[tuple[str, int]] | None = None

    def open(self, loop: asyncio.AbstractEventLoop | None, default_user: str | None) -> bool:
        """Create (if needed) and open the FIFO, start its script; False (logged) on error."""
        path = self.spec.path
        try:
            os.mkfifo(path, FIFO_MODE)
            self.created = True
            self._chown(default_user)
        except FileExistsError:
            pass
        except OSError as exc:
            log.warning("Unable to create notify fifo %s: %s", path, exc.strerror)
            return False
        script = self.spec.script
        if script is not None and loop is not None:
            found = resolve_command(script.argv[0])
            if found is None:
                log.warning("notify fifo script %s not found/executable", script.argv[0])
            else:
                argv = (found, *script.argv[1:], path)
                user = script.user or default_user
                self._script = loop.create_task(run_command(argv, None, user, script.group))
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            log.warning("Unable to open notify fifo %s: %s", path, exc.strerror)
            if self.created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                self.created = False
            return False
        if not stat.S_ISFIFO(os.fstat(self.fd).st_mode):
            log.warning("notify fifo %s exists and is not a FIFO: not written", path)
            os.close(self.fd)
            self.fd = None
            return False
        return True

    def _chown(self, default_user: str | None) -> None:
        user = self.spec.user or default_user
        if not user:
            return
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            log.warning("notify fifo %s: no user %s", self.spec.path, user)
            return
        with contextlib.suppress(OSError):
            os.chown(self.spec.path, pw.pw_uid, pw.pw_gid)

    def write(self, line: bytes) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, line)
            self.lines += 1
        except OSError as exc:
            self.lost += 1  # keepalived ignores write errors (a full pipe loses the line)
            if self.lost == 1 and exc.errno != errno.EAGAIN:
                log.warning("notify fifo %s: %s", self.spec.path, exc.strerror)

    def close(self) -> None:
        # keepalived unlinks first, so that a reader that reopens in a loop cannot.
        if self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.spec.path)
            self.created = False
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._script is not None:
            self._script.cancel()  # run_command terminates the script's process group
            self._script = None
