"""Who created which lab: state files that let a later run remove what a crashed one left.

Each lab writes ``/run/hagate-lab/<name>.json`` (creator pid + start time, namespaces, temp
dir) *before* it creates anything, and removes it after teardown. A lab is stale when its
creator is no longer running. Live labs of this process are also torn down at exit and on
SIGTERM/SIGHUP.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

from hagate.lab import procs

STATE_DIR = "/run/hagate-lab"


@dataclass(frozen=True, slots=True)
class LabRecord:
    """What a lab's state file says."""

    name: str
    pid: int
    started: int | None
    namespaces: list[str]
    tmpdir: str

    def stale(self) -> bool:
        """True when the creating process is gone."""
        return not procs.alive(self.pid, self.started)


def record_path(name: str) -> str:
    return os.path.join(STATE_DIR, f"{name}.json")


def write(record: LabRecord) -> None:
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    path = record_path(record.name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(asdict(record), f)
    os.replace(tmp, path)


def remove(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(name))


def read_all() -> list[LabRecord]:
    """Every lab record on this machine (unreadable files are skipped)."""
    try:
        names = sorted(os.listdir(STATE_DIR))
    except FileNotFoundError:
        return []
    records = []
    for entry in names:
        if not entry.endswith(".json"):
            continue
        try:
            with open(os.path.join(STATE_DIR, entry)) as f:
                data = json.load(f)
            records.append(LabRecord(**data))
        except (OSError, ValueError, TypeError):
            continue
    return records


# -- live labs of this process ------------------------------------------------------------

_live: dict[int, Callable[[], object]] = {}
_lock = threading.Lock()
_installed = False


def track(key: int, teardown: Callable[[], object]) -> None:
    """Remember a live lab's teardown so exit and SIGTERM/SIGHUP run it."""
    global _installed
    with _lock:
        _live[key] = teardown
        if not _installed:
            _installed = True
            atexit.register(teardown_all)
            _install_signal_handlers()


def untrack(key: int) -> None:
    with _lock:
        _live.pop(key, None)


def teardown_all() -> None:
    """Tear down every live lab of this process (best effort, never raises)."""
    while _live:
        _key, teardown = _live.popitem()
        try:
            teardown()
        except Exception as exc:  # a crashing teardown must not stop the others
            print(f"hagate lab: teardown failed: {exc}", file=sys.stderr)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> Any:
    teardown_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
