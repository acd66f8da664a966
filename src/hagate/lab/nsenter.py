"""Open a socket inside another network namespace without leaving this one for long.

``setns(2)`` moves only the calling thread; a socket keeps the namespace it was created in,
so we switch, create the socket, and switch straight back.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

from hagate.lab.errors import LabError
from hagate.lab.guard import netns_path

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(f"setns failed: {os.strerror(err)}")


def socket_in_netns(name: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A new socket that lives in network namespace ``name`` (needs CAP_SYS_ADMIN)."""
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LabError(f"cannot open network namespace {name!r}: {exc.strerror}") from None
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind, proto)
            finally:
                _setns(home)
        finally:
            os.close(home)
            os.close(target)
