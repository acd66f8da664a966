"""`hagate cluster ...`: keepalived.conf for N active nodes, a device's VIP, status."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("cluster", help="N active gateway nodes: keepalived files, VIPs, status")
    csub = p.add_subparsers(title="cluster commands", metavar="CMD")
    k = csub.add_parser("keepalived", help="write one keepalived.conf per node from cluster.toml")
    k.add_argument("description", type=Path, help="the cluster description (cluster.toml)")
    k.add_argument("-o", "--out", type=Path, default=Path("."), help="directory (default .)")
    k.set_defaults(func=_keepalived)
    v = csub.add_parser("vip", help="the VIP each named device dials")
    v.add_argument("description", type=Path)
    v.add_argument("devices", nargs="+")
    v.set_defaults(func=_vip)
    s = csub.add_parser("status", help="nodes, devices per node, VIPs, etcd health")
    s.add_argument("-c", "--config", type=Path, required=True, help="gateway.toml ([cluster])")
    s.add_argument("-d", "--description", type=Path, help="cluster.toml: also show the VIPs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_status)
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])


def _layout(path: Path) -> Any:
    from hagate.cluster.layout import LayoutError, load_layout

    try:
        return load_layout(path)
    except LayoutError as exc:
        print(f"hagate cluster: {exc}", file=sys.stderr)
        return None


def _keepalived(args: argparse.Namespace) -> int:
    from hagate.cluster.layout import write_all

    layout = _layout(args.description)
    if layout is None:
        return 1
    for i, path in enumerate(write_all(layout, args.out)):
        node = layout.nodes[i]
        ladder = ", ".join(
            f"{inst.vip}={layout.priority(i, j)}" for j, inst in enumerate(layout.instances())
        )
        print(f"{path}: {node.name} ({node.address}) priorities {ladder}")
    return 0


def _vip(args: argparse.Namespace) -> int:
    from hagate.cluster.layout import vip_for

    layout = _layout(args.description)
    if layout is None:
        return 1
    for device in args.devices:
        print(f"{device} {vip_for(device, layout.vips())}")
    return 0


def _status(args: argparse.Namespace) -> int:
    import asyncio

    from hagate.gateway.config import ConfigError, load_gateway_config

    try:
        cfg = load_gateway_config(args.config)
    except ConfigError as exc:
        print(f"hagate cluster status: {exc}", file=sys.stderr)
        return 1
    if cfg.cluster is None:
        print(f"hagate cluster status: {args.config} has no [cluster] section", file=sys.stderr)
        return 1
    layout = _layout(args.description) if args.description else None
    if args.description and layout is None:
        return 1
    try:
        from hagate.cluster.status import gather, render
    except ImportError as exc:
        print(f"hagate cluster status: {exc} (pip install 'hagate[cluster]')", file=sys.stderr)
        return 1
    for warning in cfg.cluster.warnings:
        print(f"hagate cluster status: warning: {warning}", file=sys.stderr)
    c = cfg.cluster
    try:
        report = asyncio.run(gather(list(c.etcd), layout, c.etcd_timeout, c.etcd_security))
    except ValueError as exc:  # a TLS or password file that cannot be read
        print(f"hagate cluster status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["etcd"]["readable"] else 1
