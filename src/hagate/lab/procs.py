"""Processes of a network namespace, read from /proc: who is in it, signal them, measure them."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from hagate.lab.guard import netns_id

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pids_in_netns(ns_path: str) -> list[int]:
    """Live processes whose network namespace is the one at ``ns_path`` (like `ip netns pids`).

    Zombies have no namespace any more and are not listed.
    """
    try:
        target = netns_id(ns_path)
    except FileNotFoundError:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        try:
            if netns_id(f"/proc/{pid}/ns/net") == target:
                found.append(pid)
        except OSError:
            continue
    return sorted(found)


def signal_all(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each pid, ignoring ones that are already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(
    ns_path: str,
    timeout: float,
    reap: Callable[[], None] | None = None,
    kill: bool = False,
    extra: Callable[[], list[int]] | None = None,
) -> list[int]:
    """Wait until no process is left in the namespace; return the ones still there at timeout.

    ``reap`` is called on every poll so our own children do not stay zombies; ``extra`` adds
    pids not (yet) in the namespace, such as a just-spawned `ip netns exec` before its setns.
    With ``kill``, every process found is sent SIGKILL (catches ones that entered late).
    """
    deadline = time.monotonic() + timeout
    while True:
        if reap is not None:
            reap()
        left = sorted(set(pids_in_netns(ns_path)) | set(extra() if extra else []))
        if not left or time.monotonic() >= deadline:
            return left
        if kill:
            signal_all(left, signal.SIGKILL)
        time.sleep(0.002)


def kill_all(
    ns_path: str,
    timeout: float = 5.0,
    reap: Callable[[], None] | None = None,
    extra: Callable[[], list[int]] | None = None,
) -> list[int]:
    """SIGSTOP then SIGKILL everything in the namespace; wait for it to vanish."""
    pids = sorted(set(pids_in_netns(ns_path)) | set(extra() if extra else []))
    signal_all(pids, signal.SIGSTOP)
    signal_all(pids, signal.SIGKILL)
    return wait_gone(ns_path, timeout, reap, kill=True, extra=extra)


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None) -> bool:
    """True if ``pid`` runs and is the same process as the one that started at ``started``."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU time and memory of a set of processes at one moment."""

    t: float  # time.monotonic()
    cpu_s: float  # utime + stime, seconds
    rss_kb: int
    pss_kb: int


def sample(pids: list[int]) -> ProcSample:
    """Sum CPU time (utime+stime) and RSS/PSS (smaps_rollup) over ``pids``."""
    ticks = rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return ProcSample(time.monotonic(), ticks / CLK_TCK, rss, pss)
