"""vrrp_script runner: run a check every ``interval``, kill it at ``timeout``, count rise/fall.

Behaviour follows keepalived 2.2.7 (vrrp_scheduler.c ``vrrp_script_thread`` /
``vrrp_script_child_thread``, lib/notify.c ``system_call_script``):

* defaults interval 1 s, timeout = interval, weight 0, rise 1, fall 1;
* exec'd directly (no shell) in its own process group, as the script user;
* exit 0 is success; any other exit status, a signal or a timeout is a failure;
* at timeout the group gets SIGTERM, 2 s later SIGKILL;
* the first result decides at once (the counter starts at rise-1); after that ``rise``
  successes in a row make it OK and ``fall`` failures in a row make it FAILED;
  ``init_fail`` starts it FAILED, needing ``rise`` successes;
* a run still in progress when the next is due is skipped;
* a script not found or not executable at start is disabled (keepalived: "Disabling track
  script ... since not found/accessible") and tracks nothing; if it disappears later the
  exec fails in the child, which keepalived counts as exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from hagate.vrrp.tracking import RiseFall

log = logging.getLogger(__name__)

TERM_GRACE_S = 2.0  # keepalived: SIGTERM, then SIGKILL 2 s later
PR_SET_PDEATHSIG = 1


class ScriptStatus(Enum):
    """What the script currently says: no result yet, OK, FAILED, or disabled at start."""

    INIT = "init"
    OK = "ok"
    FAILED = "failed"
    DISABLED = "disabled"


PROBE_INTERVAL_S = 1.0  # how often track_process scans /proc and track_file reads its file


def _match_params(probe: ProcessProbe, params: tuple[str, ...]) -> bool:
    """keepalived track_process.c check_params: exact, partial (the first n equal) or
    initial (the last configured one may be a prefix)."""
    want = probe.params
    if probe.param_match is None:
        return True
    if probe.param_match == "exact":
        return params == want
    if len(params) < len(want):
        return False
    if probe.param_match == "partial" or not want:
        return params[: len(want)] == want
    return params[: len(want) - 1] == want[:-1] and params[len(want) - 1].startswith(want[-1])


@dataclass(frozen=True, slots=True)
class ProcessProbe:
    """vrrp_track_process: OK while quorum..quorum_max matching processes run.

    keepalived follows the kernel's process events; hagate scans /proc every
    PROBE_INTERVAL_S (a change is seen up to that late). The name is matched against
    ``/proc/PID/stat``'s comm (15 characters), or argv[0] with ``full_command`` or
    parameters, as ``pgrep`` and keepalived do."""

    process: str
    params: tuple[str, ...] = ()
    param_match: str | None = None
    full_command: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    proc: str = "/proc"

    def matches(self, comm: str, argv: tuple[str, ...]) -> bool:
        if self.full_command:
            if not argv or argv[0] != self.process:
                return False
            return _match_params(self, argv[1:])
        return comm == self.process[:15]

    def count(self) -> int:
        found = 0
        try:
            entries = os.listdir(self.proc)
        except OSError:
            return 0
        for pid in entries:
            if not pid.isdigit():
                continue
            try:
                with open(f"{self.proc}/{pid}/stat", "rb") as f:
                    stat = f.read()
                comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
                if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"Z":
                    continue  # a zombie is not running
                argv: tuple[str, ...] = ()
                if self.full_command:
                    with open(f"{self.proc}/{pid}/cmdline", "rb") as f:
                        raw = f.read()
                    argv = tuple(w.decode(errors="replace") for w in raw.split(b"\0")[:-1])
            except (OSError, ValueError):
                continue  # gone meanwhile, or not ours to read
            if self.matches(comm, argv):
                found += 1
        return found

    def __call__(self) -> tuple[bool, str]:
        n = self.count()
        top = self.quorum_max
        ok = n >= self.quorum and (top is None or n <= top)
        return ok, f"{n} running"


@dataclass(frozen=True, slots=True)
class FileProbe:
    """track_file with weight 0: OK while the file holds 0 (missing or unreadable: 0), as
    keepalived reads it (strtol, base 0). keepalived watches with inotify; hagate reads it
    every PROBE_INTERVAL_S."""

    path: str
    init_file: int | None = None  # init_file VALUE: written when the file is missing
    overwrite: bool = False  # init_file ... overwrite: written at start even if present

    def initialise(self, startup: bool) -> None:
        """keepalived vrrp_tfile_end_handler: write ``init_file``'s number if the file is
        missing, or (``overwrite``, at start only) if it is a regular file; never through
        a symlink or into anything else. Failures are logged, never fatal."""
        if self.init_file is None:
            return
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            log.error("Cannot initialise track file %s: %s", self.path, exc.strerror)
            return
        if st is not None and (not self.overwrite or not startup):
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            log.error("Cannot initialise track file %s - it is not a regular file", self.path)
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
            try:
                os.write(fd, f"{self.init_file}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("Unable to initialise track file %s: %s", self.path, exc.strerror)

    def value(self) -> int:
        try:
            with open(self.path, "rb") as f:
                text = f.read(127).decode(errors="replace").strip()
        except OSError:
            return 0
        if not text:
            return 0
        word = text.split()[0]
        try:
            return int(word, 0)
        except ValueError:
            digits = ""
            for ch in word:
                if not (ch.isdigit() or (not digits and ch in "+-")):
                    break
                digits += ch
            try:
                return int(digits)
            except ValueError:
                return 0

    def __call__(self) -> tuple[bool, str]:
        value = self.value()
        return value == 0, f"value {value}"


Probe = ProcessProbe | FileProbe


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """One ``vrrp_script`` block, resolved (seconds as floats)."""

    name: str
    argv: tuple[str, ...]
    interval: float = 1.0
    timeout: float | None = None  # None: the interval, as keepalived
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False  # keepalived ``init_fail``: failed until it has risen
    probe: Probe | None = None  # track_process / track_file: checked in-process, no exec

    @property
    def effective_timeout(self) -> float:
        return self.timeout if self.timeout else self.interval


def resolve_command(argv0: str) -> str | None:
    """Full path of an executable ``argv0`` (searched on PATH if it has no '/'), else None."""
    if "/" not in argv0:
        return shutil.which(argv0)
    if os.path.isfile(argv0) and os.access(argv0, os.X_OK):
        return argv0
    return None


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec function asking for SIGTERM if the daemon dies (keepalived does the same)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


_PREEXEC = _pdeathsig()


async def run_command(
    argv: tuple[str, ...],
    timeout: float | None,
    user: str | None = None,
    group: str | None = None,
    env: dict[str, str] | None = None,
    reap_group: bool = False,
) -> tuple[str, int]:
    """Run ``argv`` to completion or ``timeout`` (None: no limit); return (outcome, code).

    outcome is "exited" (code = exit status), "signalled" (code = signal number),
    "timed_out" (killed by us) or "exec_failed" (code = errno; counted as exit 0 by
    keepalived).
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # own process group, killed as a whole
            user=user,
            group=group,
            env=env,
            preexec_fn=_PREEXEC,
            close_fds=True,
        )
    except (OSError, ValueError, KeyError) as exc:
        return "exec_failed", getattr(exc, "errno", 0) or 0
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        await _terminate(proc)
        return "timed_out", 0
    except asyncio.CancelledError:
        await asyncio.shield(_terminate(proc))
        raise
    if reap_group:
        # A check that forked (``sleep 600 &``, a hung curl in a pipeline) leaves children
        # in its process group; run every second they pile up. The group is the script's
        # alone (own session): SIGKILL what is left of it once its leader is done.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if code < 0:
        return "signalled", -code
    return "exited", code


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it after TERM_GRACE_S, reap."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group
        return


class ScriptRunner:
    """Runs one vrrp_script; calls ``on_change(runner)`` whenever its status changes."""

    def __init__(
        self,
        spec: ScriptSpec,
        on_change: Callable[[ScriptRunner], None],
        default_user: str | None = None,
    ) -> None:
        self.spec = spec
        self._on_change = on_change
        self._user = spec.user or default_user
        self._group = spec.group
        # keepalived's rise/fall counter (hagate.vrrp.tracking.RiseFall, as the simulator);
        # init_fail: "assume failed by config"
        self.counter = RiseFall(spec.rise, spec.fall, spec.init_fail)
        self.status = ScriptStatus.FAILED if spec.init_fail else ScriptStatus.INIT
        self.last_exit: str = ""
        self.level: int | None = None  # track_file: the number last read (None: not yet)
        self.runs = 0
        self.skipped = 0
        self._argv = spec.argv
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.spec.probe is not None:
            self._loop = loop
            loop.call_soon(self._tick)
            return
        path = resolve_command(self.spec.argv[0]) if self.spec.argv else None
        if path is None:
            log.warning(
                "Disabling track script %s since not found/accessible: %s",
                self.spec.name,
                self.spec.argv[0] if self.spec.argv else "(empty)",
            )
            self.status = ScriptStatus.DISABLED
            return
        self._argv = (path, *self.spec.argv[1:])
        self._loop = loop
        loop.call_soon(self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
        self._loop = None

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._timer = loop.call_later(self.spec.interval, self._tick)
        if self._task is not None and not self._task.done():
            self.skipped += 1
            log.info(
                "Track script %s is already running, expect idle - skipping run", self.spec.name
            )
            return
        self._task = loop.create_task(self._run_once())

    async def _run_once(self) -> None:
        probe = self.spec.probe
        if isinstance(probe, FileProbe):
            value = await asyncio.to_thread(probe.value)
            self.runs += 1
            self.last_exit = f"value {value}"
            changed, self.level = self.level != value, value
            before = self.status
            self.record(value == 0, self.last_exit)
            if changed and self.status is before:
                self._on_change(self)  # a weighted track_file follows the number itself
            return
        if probe is not None:
            ok, detail = await asyncio.to_thread(probe)  # /proc scans off the loop
            self.runs += 1
            self.last_exit = detail
            self.record(ok, detail)
            return
        outcome, code = await run_command(
            self._argv, self.spec.effective_timeout, self._user, self._group, reap_group=True
        )
        self.runs += 1
        if outcome == "exec_failed":
            log.error(
                "Error exec-ing command '%s': %s", self._argv[0], os.strerror(code) if code else "?"
            )
            outcome, code = "exited", 0  # system_call_script: exit(0) after a failed execve
        self.last_exit = f"{outcome} {code}" if outcome != "timed_out" else outcome
        self.record(outcome == "exited" and code == 0, self.last_exit)

    @property
    def result(self) -> int:
        """keepalived's ``result`` counter (0 .. rise+fall-1)."""
        return self.counter.result

    def record(self, success: bool, detail: str = "") -> None:
        """Apply one result with keepalived's rise/fall counter (``vrrp_script_child_thread``)."""
        if self.counter.record(success):
            if self.counter.ok:
                self._set(ScriptStatus.OK, "succeeded")
            else:
                self._set(ScriptStatus.FAILED, detail or "failed")

    def _set(self, status: ScriptStatus, why: str) -> None:
        if status is self.status:
            return
        self.status = status
        log.info("VRRP_Script(%s) %s", self.spec.name, why)
        try:
            self._on_change(self)
        except Exception:
            log.exception("script %s: error applying its result", self.spec.name)


def default_script_user(configured: str | None) -> str | None:
    """keepalived's script user: global ``script_user``, else ``keepalived_script`` if that
    account exists, else the daemon's own user (None: do not switch)."""
    if configured:
        return configured
    try:
        pwd.getpwnam("keepalived_script")
    except KeyError:
        return None
    return "keepalived_script"
