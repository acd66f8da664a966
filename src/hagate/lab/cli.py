"""`hagate lab`: network-namespace labs and the demo."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser(
        "lab",
        help="run the demo cluster and other network-namespace labs",
        description="Network-namespace labs: the demo cluster, and clean-up after a crash.",
    )
    lab_sub = lab.add_subparsers(title="lab commands", metavar="LABCMD")
    demo = lab_sub.add_parser(
        "demo",
        help="show an election and a failover, with a timeline",
        description=(
            "Two VRRP routers elect a master, the master crashes, the backup takes over "
            "after Master_Down_Interval; the timeline shows every transition and why."
        ),
    )
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from hagate.simulate.demo import run_core_demo

    return run_core_demo()
