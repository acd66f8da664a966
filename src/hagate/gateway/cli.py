"""`hagate gateway`: run the tunnel gateway; `hagate gateway check`: its health for vrrp_script."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

DEFAULT_HEALTH_URL = "http://127.0.0.1:9180/healthz"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gw = sub.add_parser(
        "gateway",
        help="run the tunnel gateway that the VIP protects (or check its health)",
        description=(
            "Listen for device agents (mutual TLS) and for users (HTTP/HTTPS by Host name, raw "
            "TCP ports, `hagate connect`). Both cluster nodes run it with the same gateway.toml."
        ),
    )
    gw.add_argument("-c", "--config", type=Path, default=Path("gateway.toml"))
    gw.add_argument("-v", "--verbose", action="store_true", help="log every session and stream")
    gw.add_argument(
        "--access-log",
        type=Path,
        metavar="PATH",
        help="this node's access log file (JSON lines), overriding [log] access: both nodes "
        "share gateway.toml, the log is each node's own",
    )
    gw.add_argument("--node", help="this node's name in logs and /healthz (default: host name)")
    gw.set_defaults(func=_run)
    gw_sub = gw.add_subparsers(title="gateway commands", metavar="GWCMD")
    check = gw_sub.add_parser(
        "check",
        help="exit 0 if the local gateway answers /healthz, else 1 (for vrrp_script)",
    )
    check.add_argument("--url", help=f"health URL (default from -c, else {DEFAULT_HEALTH_URL})")
    check.add_argument("-c", "--config", type=Path, dest="check_config")
    check.add_argument("--timeout", type=float, default=1.0)
    check.add_argument("-q", "--quiet", action="store_true")
    check.set_defaults(func=_check)
    from hagate.policy.cli import add_check_arguments, check_main

    check_policy = gw_sub.add_parser(
        "check-policy",
        help="lint the access policy file (the same as `hagate policy check`)",
        description=(
            "Load the policy file as the gateway would and report FILE:LINE errors and "
            "warnings; exit 0 if the gateway would load it, 2 if not. Ask who may reach what "
            "with `hagate policy can`."
        ),
    )
    add_check_arguments(check_policy)
    check_policy.set_defaults(func=check_main)


def _run(args: argparse.Namespace) -> int:
    from hagate.gateway.config import ConfigError, load_gateway_config
    from hagate.gateway.server import run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = load_gateway_config(args.config)
        if args.access_log is not None:
            cfg = dataclasses.replace(cfg, access_log=args.access_log)
        if args.node:
            cfg = dataclasses.replace(cfg, node=args.node)
        return run(cfg)
    except ConfigError as exc:
        print(f"hagate gateway: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"hagate gateway: {exc}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    url = args.url
    if url is None and args.check_config is not None:
        from hagate.gateway.config import ConfigError, load_gateway_config

        try:
            admin = load_gateway_config(args.check_config).admin
        except ConfigError as exc:
            print(f"hagate gateway check: {exc}", file=sys.stderr)
            return 1
        if admin is None:
            print("hagate gateway check: no [listen] admin in the config", file=sys.stderr)
            return 1
        host = "127.0.0.1" if admin.host in ("0.0.0.0", "") else admin.host
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        url = f"http://{host}:{admin.port}/healthz"
    url = url or DEFAULT_HEALTH_URL
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            ok = resp.status == 200
            body = resp.read(512).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        ok, body = False, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        ok, body = False, str(getattr(exc, "reason", exc))
    if not args.quiet:
        print(f"{'ok' if ok else 'FAIL'} {url} {body}")
    return 0 if ok else 1
