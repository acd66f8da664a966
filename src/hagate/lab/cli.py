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
    down = lab_sub.add_parser(
        "down",
        help="remove what a crashed lab run left behind",
        description=(
            "Remove network namespaces, processes and temp dirs of labs whose creating "
            "process is no longer running. Live labs are never touched."
        ),
    )
    down.add_argument(
        "--prefix",
        default=None,
        help="only labs with this prefix; also removes unclaimed PREFIX-xxxx-* namespaces",
    )
    down.set_defaults(func=_down)


def _demo(args: argparse.Namespace) -> int:
    from hagate.simulate.demo import run_core_demo

    return run_core_demo()


def _down(args: argparse.Namespace) -> int:
    import sys

    from hagate.lab import Lab, LabError

    try:
        removed = Lab.cleanup_stale(args.prefix)
    except LabError as exc:
        print(f"hagate lab down: {exc}", file=sys.stderr)
        return 1
    if removed:
        print("removed: " + " ".join(removed))
    else:
        print("nothing to remove")
    return 0
