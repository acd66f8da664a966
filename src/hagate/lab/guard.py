"""Is this process inside a given lab namespace? (pure stdlib, cheap; used by the daemon)."""

from __future__ import annotations

import os
import re

from hagate.lab.errors import LabError

NETNS_DIR = "/run/netns"  # where `ip netns add` bind-mounts named namespaces
ENV_VAR = "HAGATE_LAB_NETNS"  # set for every process the lab spawns

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def netns_path(name: str) -> str:
    """The bind-mount path of a named network namespace; rejects names with a path in them."""
    if not _NAME.match(name):
        raise LabError(f"not a valid network namespace name: {name!r}")
    return os.path.join(NETNS_DIR, name)


def netns_id(path: str) -> tuple[int, int]:
    """(device, inode) of a namespace file, which identifies the namespace."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def in_netns(name: str) -> bool:
    """True if this process's network namespace is the named one."""
    try:
        target = netns_id(netns_path(name))
    except FileNotFoundError:
        return False
    return netns_id("/proc/self/ns/net") == target


def assert_in_netns(name: str) -> None:
    """Raise :class:`LabError` unless this process runs inside network namespace ``name``."""
    path = netns_path(name)
    try:
        target = netns_id(path)
    except OSError as exc:
        raise LabError(f"network namespace {name!r} does not exist ({exc.strerror})") from None
    if netns_id("/proc/self/ns/net") != target:
        raise LabError(
            f"refusing to run: this process is not inside network namespace {name!r} "
            f"(start it with `ip netns exec {name} ...`)"
        )
