"""`hagate pki`: make the cluster CA, issue device/user/server/node bundles, revoke by CRL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = sub.add_parser(
        "pki",
        help="certificate authority for gateways, device agents and users",
        description=(
            "A file-based CA: both gateway nodes need only ca.crt, their server bundle and "
            "crl.pem. Devices and users get a bundle (cert.pem, key.pem, ca.crt) each; each "
            "node of an N-active cluster a node bundle (--node, docs/scale.md)."
        ),
    )
    pki_sub = pki.add_subparsers(title="pki commands", metavar="PKICMD")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, default=Path("pki"), help="PKI directory (./pki)")

    init = pki_sub.add_parser("init", help="create the CA and an empty CRL")
    common(init)
    init.add_argument("--name", default="hagate cluster CA", help="CA common name")
    init.add_argument("--days", type=int, default=3650)
    init.set_defaults(func=_init)

    iss = pki_sub.add_parser(
        "issue",
        help="issue a bundle for a device (default), a user (--user), a gateway (--server) "
        "or a cluster node (--node)",
    )
    common(iss)
    iss.add_argument("name", help="device name (a DNS label), user, server or node name")
    role = iss.add_mutually_exclusive_group()
    role.add_argument("--user", action="store_true", help="a user certificate for `connect`")
    role.add_argument("--server", action="store_true", help="a gateway server certificate")
    role.add_argument(
        "--node",
        action="store_true",
        help="a cluster node's certificate (OU hagate-node, server and client auth, SAN its "
        "name): the node-to-node peer channel and, by default, its etcd client certificate",
    )
    iss.add_argument(
        "--dns",
        action="append",
        default=[],
        help="server/node: DNS name (repeat; e.g. gw.example.com and *.gw.example.com; "
        "default: the name)",
    )
    iss.add_argument(
        "--ip",
        action="append",
        default=[],
        help="server/node: IP address (repeat; e.g. the VIPs, a node's address)",
    )
    iss.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="device/user: also write agent.toml / user.toml for this gateway (e.g. the VIP)",
    )
    iss.add_argument("--server-name", help="with --gateway: the gateway's TLS name")
    iss.add_argument("--days", type=int, default=1825)
    iss.add_argument("--force", action="store_true", help="re-issue an existing name")
    iss.set_defaults(func=_issue)

    rev = pki_sub.add_parser("revoke", help="revoke an issued certificate (rewrites crl.pem)")
    common(rev)
    rev.add_argument("name", nargs="?", help="the issued name")
    rev.add_argument(
        "--role",
        choices=["device", "user", "server", "node"],
        help="the role of NAME, when one name was issued for several roles",
    )
    rev.add_argument("--serial", help="revoke by serial number (hex) instead of by name")
    rev.set_defaults(func=_revoke)

    ls = pki_sub.add_parser("list", help="list issued certificates and whether revoked")
    common(ls)
    ls.set_defaults(func=_list)


def _fail(msg: str) -> int:
    print(f"hagate pki: {msg}", file=sys.stderr)
    return 1


def _init(args: argparse.Namespace) -> int:
    from hagate.pki.ca import PKIError, init_ca

    try:
        path = init_ca(args.dir, args.name, args.days)
    except PKIError as exc:
        return _fail(str(exc))
    print(f"CA created: {path} (key {args.dir / 'ca.key'}, CRL {args.dir / 'crl.pem'})")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from hagate.pki.ca import PKIError, Role, issue

    role = Role.DEVICE
    for flag, r in (("user", Role.USER), ("server", Role.SERVER), ("node", Role.NODE)):
        if getattr(args, flag):
            role = r
    named = role in (Role.SERVER, Role.NODE)
    if (args.dns or args.ip) and not named:
        return _fail("--dns and --ip are for --server and --node certificates")
    if args.gateway and named:
        return _fail("--gateway writes a device's agent.toml or a user's user.toml")
    dns = args.dns
    if role is Role.NODE and dns and args.name not in dns:
        dns = [args.name, *dns]  # peers check the node's name (TLS server name = node name)
    try:
        out = issue(
            args.dir,
            role,
            args.name,
            days=args.days,
            dns=dns or None,
            ips=args.ip,
            force=args.force,
        )
    except PKIError as exc:
        return _fail(str(exc))
    print(f"{role.value} {args.name}: {out.cert}, {out.key}, {out.ca} (serial {out.serial:x})")
    if args.gateway:
        path = _write_client_config(out.directory, role, args.gateway, args.server_name)
        print(f"config: {path}")
    return 0


def _write_client_config(
    directory: Path, role: object, gateway: str, server_name: str | None
) -> Path:
    from hagate.pki.ca import Role

    lines = [f'gateway = "{gateway}"']
    if server_name:
        lines.append(f'server_name = "{server_name}"')
    lines += ["", "[tls]", 'ca = "ca.crt"', 'cert = "cert.pem"', 'key = "key.pem"']
    if role is Role.DEVICE:
        lines += [
            "",
            "# The services this device exposes (see docs/gateway.md).",
            "[[service]]",
            'name = "http"',
            'type = "http"',
            'target = "127.0.0.1:80"',
            "",
            "[[service]]",
            'name = "ssh"',
            'type = "tcp"',
            'target = "127.0.0.1:22"',
        ]
    path = directory / ("agent.toml" if role is Role.DEVICE else "user.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def _revoke(args: argparse.Namespace) -> int:
    from hagate.pki.ca import PKIError, Role, revoke, revoke_serial

    try:
        if args.serial:
            try:
                serial = revoke_serial(args.dir, int(args.serial, 16))
            except ValueError:
                return _fail(f"not a hex serial: {args.serial!r}")
        elif args.name:
            serial = revoke(args.dir, args.name, Role(args.role) if args.role else None)
        else:
            return _fail("say which certificate: NAME or --serial")
    except PKIError as exc:
        return _fail(str(exc))
    print(f"revoked serial {serial:x}; copy {args.dir / 'crl.pem'} to every gateway node")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cryptography import x509

    from hagate.pki.ca import PKIError, revoked_serials

    try:
        revoked = {e.serial_number for e in revoked_serials(args.dir)}
    except (PKIError, ValueError) as exc:
        return _fail(str(exc))
    for cert_path in sorted((args.dir / "issued").glob("*/*/cert.pem")):
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        role, name = cert_path.parent.parent.name, cert_path.parent.name
        state = "REVOKED" if cert.serial_number in revoked else "valid"
        until = cert.not_valid_after_utc.date()
        print(f"{role:7} {name:30} {cert.serial_number:x}  until {until}  {state}")
    return 0
