"""Network-namespace labs for tests, benchmarks and the demo (never the host namespace).

``Lab.create(...)`` builds a bridge and one namespace per node; see docs/lab.md.
"""

from hagate.lab.errors import LabError
from hagate.lab.lab import Lab, unavailable_reason
from hagate.lab.node import Node
from hagate.lab.watch import AddressWatcher, AddrEvent, GarpEvent, GarpKind, GarpWatcher

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
