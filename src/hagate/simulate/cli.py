"""`hagate simulate`: run the nodes' keepalived.conf files through a failure scenario."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_DESCRIPTION = """\
See what a cluster's configs will do on failures, before deploying them. Each FILE is one
node's keepalived.conf (name a node with NAME=FILE; default: the file name without .conf).
The configs are parsed by the same parser and driven by the same VRRP state machine as the
daemon, on a simulated link with a virtual clock: no root, no network, well under a second.
Scripts and interfaces are simulated by name, their results come from the scenario.

Prints a timeline (every node's state and effective priority, who holds each VIP, and why
each transition happened) and verdicts in words."""

_EPILOG = """\
scenario language (statements separated by ';' or new lines, '#' comments):
  crash NODE at T                power loss: no priority 0 advert, VIPs vanish
  start NODE at T                boot (a node whose first step is 'start' is down until then)
  restart NODE at T              boot after a crash; a running node is stopped and started
  stop NODE at T                 graceful stop: priority 0 advert, VIPs released
  fail ITEM on NODE from T to T  a vrrp_script fails (rise/fall/interval apply) or an
                                 interface is down; also 'at T for D', or 'at T' (for good)
  write N to FILE on NODE at T   a number into a track_file (weighted: N x weight moves the
                                 priority; weight 0: down while N is not 0); it stays
  partition [A,B | C] at T for D nodes hear only their own group (default: each alone)
  heal at T                      end a partition
  loss P% [on NODE] from T to T  lose P% of adverts (of every node, or of NODE's)
  end at T                       how long to simulate (default: last step + 30 s)
times: 10, 10s, 1.5s, 500ms, 2m, 1m30s

ready-made scenarios (--scenario NAME; --show-scenario prints the text):
{presets}

examples:
  hagate simulate node1.conf node2.conf --scenario standard
  hagate simulate node1.conf node2.conf --scenario 'crash node1 at 10s; restart node1 at 30s'
  hagate simulate a=/etc/keepalived/keepalived.conf b=peer.conf --scenario my.scenario --json

exit status: 0 simulated; 1 at the end a VIP is held by nobody or by two nodes;
2 bad configs or scenario."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from hagate.simulate.presets import PRESETS

    presets = "\n".join(f"  {name:<10} {what}" for name, what in PRESETS.items())
    p = sub.add_parser(
        "simulate",
        help="simulate a cluster's keepalived.conf files through failures",
        description=_DESCRIPTION,
        epilog=_EPILOG.format(presets=presets),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="[NAME=]FILE", help="keepalived.conf per node")
    p.add_argument(
        "--scenario",
        "-s",
        default="standard",
        help="a ready-made scenario's name, a scenario file, or scenario text (default: standard)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plot", metavar="PNG", type=Path, help="draw the timeline to this file")
    p.add_argument("--seed", type=int, default=0, help="random seed for 'loss' (default 0)")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="also show adverts, GARPs and notifies"
    )
    p.add_argument("--show-scenario", action="store_true", help="print the scenario text and exit")
    p.set_defaults(func=run)


def scenario_text(spec: str, cluster: object) -> tuple[str, str]:
    """(label, text) of ``--scenario``: a preset name, a file, or the text itself."""
    from hagate.simulate.cluster import Cluster
    from hagate.simulate.presets import PRESETS, preset

    assert isinstance(cluster, Cluster)
    if spec in PRESETS:
        return spec, preset(spec, cluster)
    path = Path(spec)
    if "\n" not in spec and ";" not in spec and path.is_file():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read scenario {path}: {exc}") from None
    return "scenario", spec


def run(args: argparse.Namespace) -> int:
    from hagate.config.findings import Severity
    from hagate.simulate.cluster import ClusterError, load_cluster
    from hagate.simulate.plot import PlotError, plot
    from hagate.simulate.report import text_report, to_json
    from hagate.simulate.runner import simulate
    from hagate.simulate.scenario import ScenarioError, parse
    from hagate.simulate.verdicts import verdicts

    def fail(message: str) -> int:
        print(f"hagate simulate: {message}", file=sys.stderr)
        return 2

    try:
        cluster = load_cluster(list(args.files))
    except ClusterError as exc:
        return fail(str(exc))
    for finding in cluster.findings:
        if finding.severity is Severity.ERROR:
            print(f"hagate simulate: config: {finding}", file=sys.stderr)
    try:
        label, text = scenario_text(args.scenario, cluster)
    except ValueError as exc:
        return fail(str(exc))
    try:
        scenario = parse(text, {h.name: h.items() for h in cluster.hosts})
    except ScenarioError as exc:
        return fail(f"{label}: {exc}")
    if args.show_scenario:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    try:
        result = simulate(cluster, scenario, seed=args.seed)
    except ClusterError as exc:  # a reload step's config
        return fail(f"{label}: {exc}")
    found = verdicts(result)
    if args.plot is not None:
        try:
            plot(result, args.plot)
        except PlotError as exc:
            return fail(str(exc))
    if args.json:
        json.dump(to_json(result, found), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text_report(result, found, verbose=args.verbose))
        if args.plot is not None:
            print(f"timeline drawn to {args.plot}")
    final = result.final().values()
    counts = [sum(vip in view.vips for view in final) for vip in result.vips]
    return 0 if all(c == 1 for c in counts) else 1
