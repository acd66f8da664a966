"""`hagate lab`: network-namespace labs and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser(
        "lab",
        help="run the demo cluster and other network-namespace labs",
        description="Network-namespace labs: the demo cluster, and clean-up after a crash.",
    )
    lab_sub = lab.add_subparsers(title="lab commands", metavar="LABCMD")
    demo = lab_sub.add_parser(
        "demo",
        help="the whole HA cluster in namespaces: a failover end to end, with a timeline",
        description=(
            "Build the seed's cluster in network namespaces (node-1 10.1.1.5 and node-2 "
            "10.1.1.10 running hagate vrrp and hagate gateway, VIP 10.1.1.100, a device "
            "running hagate agent, a user sending requests through the VIP), SIGKILL the "
            "master and measure master down -> backup MASTER -> gratuitous ARP -> agent "
            "reconnected -> first user request OK. Then node-1 returns (preemption). Writes "
            "timeline.json and timeline.png. Needs root; touches only its own namespaces."
        ),
        epilog=(
            "examples:\n"
            "  hagate lab demo                                  # the seed's timers (v2, 1 s)\n"
            "  hagate lab demo --advert-int 0.1 --vrrp-version 3   # the fast form\n"
            "  hagate lab demo --keepalived     # node-2 runs keepalived: a mixed cluster\n"
            "  hagate lab demo --sticky         # the recipe that keeps the VIP on node-2\n"
            "  hagate lab demo --simulated      # no namespaces: the state machines only"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--advert-int", type=float, default=1.0, metavar="S",
        help="VRRP advert interval in seconds (default 1; v3 allows 0.01 steps)",
    )  # fmt: skip
    demo.add_argument(
        "--vrrp-version", type=int, choices=(2, 3), default=2, help="VRRP version (default 2)"
    )
    demo.add_argument(
        "--keepalived", action="store_true", help="node-2 runs Debian's keepalived instead"
    )
    demo.add_argument(
        "--sticky", action="store_true",
        help="both nodes BACKUP + nopreempt, priority < 255: node-1's return changes nothing",
    )  # fmt: skip
    demo.add_argument(
        "--keep", action="store_true",
        help="leave the lab running and print how to enter it ('hagate lab down' removes it)",
    )  # fmt: skip
    demo.add_argument(
        "--out", type=Path, default=Path("hagate-demo"), metavar="DIR",
        help="where timeline.json, timeline.png, configs and logs go (default ./hagate-demo)",
    )  # fmt: skip
    demo.add_argument("--rate", type=float, default=20.0, help="user requests per second (20)")
    demo.add_argument("--no-plot", action="store_true", help="do not write timeline.png")
    demo.add_argument(
        "--no-restore", action="store_true", help="stop after the failover (node-1 stays down)"
    )
    demo.add_argument("--prefix", default="hgd", help="namespace prefix of this run (default hgd)")
    demo.add_argument(
        "--nodes", type=int, default=2,
        help="3 or more: N active nodes on a 3-member etcd, any node serves any device (scale.md)",
    )  # fmt: skip
    demo.add_argument(
        "--devices", type=int, default=0, metavar="N",
        help="add a fleet of N idle devices and plot the fleet curve (devices reachable)",
    )  # fmt: skip
    demo.add_argument(
        "--simulated", action="store_true",
        help="run the simulated core demo instead (virtual clock, no root, no namespaces)",
    )  # fmt: skip
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
    import sys

    if args.simulated:
        from hagate.simulate.demo import run_core_demo

        return run_core_demo()
    if args.nodes != 2:
        from hagate.lab.multidemo import run_multi_demo

        if not 3 <= args.nodes <= 9:
            print("hagate lab demo: --nodes is 2 (active-standby) or 3 to 9", file=sys.stderr)
            return 2
        return run_multi_demo(args.nodes, args.out, args.advert_int, args.keep)
    from hagate.lab.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(
        advert_int=args.advert_int,
        vrrp_version=args.vrrp_version,
        keepalived=args.keepalived,
        sticky=args.sticky,
        keep=args.keep,
        out=args.out,
        prefix=args.prefix,
        rate=args.rate,
        plot=not args.no_plot,
        restore=not args.no_restore,
        devices=args.devices,
    )
    try:
        return run_demo(options)
    except DemoError as exc:
        print(f"hagate lab demo: {exc}", file=sys.stderr)
        return 2


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
