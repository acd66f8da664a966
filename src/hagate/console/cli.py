"""``hagate console``: the operator's web console (docs/console.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_LISTEN = "127.0.0.1:8600"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "console",
        help="the operator's web console: cluster, devices, access, live",
        description=(
            "A web console of the cluster: each node's VRRP state and a live timeline of "
            "transitions and failovers, the devices online on each gateway, the access log, "
            "and 'can this user reach this device?'. Log in with a [passwords] entry or a user "
            "certificate of the access policy; the policy's 'operator' group may act, its "
            "'viewer' group may look. Loopback only unless --listen says otherwise."
        ),
    )
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT[,run=DIR]",
        help="a node: its gateway's admin listener and its VRRP daemon's run directory "
        "(repeat for each node)",
    )
    p.add_argument(
        "--admin-token-file",
        type=Path,
        metavar="PATH",
        help="the gateways' admin token ([listen] admin_token_file of gateway.toml), sent to "
        "every node; without it the gateways refuse the console's kick",
    )
    p.add_argument(
        "--admin-ca",
        type=Path,
        metavar="CA",
        help="talk HTTPS to the gateways' admin listeners ([listen] admin_tls), checking their "
        "certificate against this CA ([tls] ca of gateway.toml)",
    )
    p.add_argument(
        "--admin-server-name",
        metavar="NAME",
        help="with --admin-ca: the name the gateways' certificate must carry (default: each "
        "node's admin address, which must then be an IP address in the certificate)",
    )
    p.add_argument("--policy", type=Path, help="the access policy file (logins, roles, 'can')")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--key", type=Path, help="... and this key")
    p.add_argument(
        "--client-ca", type=Path, help="accept user certificates of this CA as a login (HTTPS)"
    )
    p.add_argument("--pki", type=Path, help="PKI directory: lets operators revoke tokens")
    p.add_argument(
        "--public-name",
        action="append",
        default=[],
        help="a host name the console is reached by (Host header; addresses always work)",
    )
    p.add_argument("--operator-group", default="operator")
    p.add_argument("--viewer-group", default="viewer")
    p.add_argument("--audit-log", type=Path, help="append every action as a JSON line")
    p.add_argument("--interval", type=float, default=0.25, help="VRRP poll interval, s")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"hagate console: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from hagate.console.auth import ConsoleAuth
    from hagate.console.nodes import NodeClient, NodeTarget, admin_client_context
    from hagate.console.poller import Cluster
    from hagate.console.views import Views
    from hagate.console.web import ConsoleApp, ConsoleServer, ensure_private, serve
    from hagate.daemon.status import parse_host_port
    from hagate.gateway.config import ConfigError, is_loopback, read_token_file

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        targets = [NodeTarget.parse(text) for text in args.node]
        host, port = parse_host_port(args.listen)
    except ValueError as exc:
        return _fail(str(exc))
    if not targets:
        return _fail("give at least one --node NAME=HOST:PORT[,run=DIR]")
    if len({t.name for t in targets}) != len(targets):
        return _fail("two --node entries have the same name")
    if bool(args.cert) != bool(args.key):
        return _fail("--cert and --key go together")
    if args.client_ca and not args.cert:
        return _fail("--client-ca needs HTTPS (--cert and --key)")
    if not 0.05 <= args.interval <= 10:
        return _fail("--interval must be 0.05..10 s")
    tls: ssl.SSLContext | None = None
    if args.cert:
        try:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            tls.load_cert_chain(args.cert, args.key)
            if args.client_ca:
                tls.load_verify_locations(args.client_ca)
                tls.verify_mode = ssl.CERT_OPTIONAL
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"TLS: {exc}")
    if args.audit_log:
        try:
            ensure_private(args.audit_log)
        except OSError as exc:
            return _fail(f"--audit-log {args.audit_log}: {exc.strerror}")
    token: str | None = None
    if args.admin_token_file:
        try:
            token = read_token_file(args.admin_token_file, "--admin-token-file")
        except ConfigError as exc:
            return _fail(str(exc))
    if args.admin_server_name and not args.admin_ca:
        return _fail("--admin-server-name goes with --admin-ca")
    admin_tls: ssl.SSLContext | None = None
    if args.admin_ca:
        try:
            admin_tls = admin_client_context(args.admin_ca)
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"--admin-ca {args.admin_ca}: {getattr(exc, 'strerror', None) or exc}")
    elif token is not None:
        remote = [t.name for t in targets if t.admin and not is_loopback(t.admin[0])]
        if remote:
            logging.getLogger("hagate.console").warning(
                "the admin token goes in clear to %s (not loopback): give --admin-ca and set "
                "[listen] admin_tls = true on the gateways",
                ", ".join(remote),
            )
    clients = [
        NodeClient(t, token=token, tls=admin_tls, server_name=args.admin_server_name)
        for t in targets
    ]
    cluster = Cluster(clients, interval=args.interval)
    views = Views(cluster, args.policy, args.pki)
    app = ConsoleApp(
        cluster,
        views,
        ConsoleAuth(args.operator_group, args.viewer_group),
        frozenset(n.lower() for n in args.public_name),
        args.audit_log,
    )
    try:
        server = ConsoleServer((host, port), app, tls)
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    if args.policy is None:
        logging.getLogger("hagate.console").warning("no --policy: nobody can log in")
    cluster.start()
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    scheme = "https" if tls else "http"
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"hagate console on {scheme}://{shown}:{bound_port}/", flush=True)

    def stop(_sig: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        serve(server)
    finally:
        cluster.stop()
    return 0
