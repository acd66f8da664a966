"""Network-namespace labs for tests, benchmarks and the demo (never the host namespace).

``Lab.create(...)`` builds a bridge and one namespace per node; see docs/lab.md.
The names below load on first use, so that ``hagate.lab.guard`` (imported by the daemon at
start-up) does not pay for the whole lab.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hagate.lab.errors import LabError
    from hagate.lab.lab import Lab, unavailable_reason
    from hagate.lab.node import Node
    from hagate.lab.watch import AddressWatcher, AddrEvent, GarpEvent, GarpKind, GarpWatcher

_WHERE = {
    "AddrEvent": "hagate.lab.watch",
    "AddressWatcher": "hagate.lab.watch",
    "GarpEvent": "hagate.lab.watch",
    "GarpKind": "hagate.lab.watch",
    "GarpWatcher": "hagate.lab.watch",
    "Lab": "hagate.lab.lab",
    "LabError": "hagate.lab.errors",
    "Node": "hagate.lab.node",
    "unavailable_reason": "hagate.lab.lab",
}

__all__ = [
    "AddrEvent",
    "AddressWatcher",
    "GarpEvent",
    "GarpKind",
    "GarpWatcher",
    "Lab",
    "LabError",
    "Node",
    "unavailable_reason",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hagate.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
