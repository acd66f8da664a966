"""`hagate lab demo`: the seed's HA cluster in network namespaces, failing over end to end."""

from hagate.lab.demo.options import DemoError, DemoOptions
from hagate.lab.demo.run import run_demo

__all__ = ["DemoError", "DemoOptions", "run_demo"]
