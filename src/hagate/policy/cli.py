"""`hagate policy check/can` (lint a policy, ask it a question) and `hagate token ...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_ROUTES = ["http", "https", "tcp", "connect"]

_CAN_EPILOG = """\
PRINCIPAL is user:NAME (certificate), password:NAME (basic auth), token:NAME, device:NAME
or anonymous. Without --route every route is answered. Without --from the rules' "from"
lists are ignored (and named in the answer).

exit status: 0 allowed (on some route, without --route), 1 denied, 2 bad file or arguments

example: hagate policy can user:alice dev1/ssh --route connect -f /etc/hagate/policy.toml"""


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hagate policy check` (for aliases such as `gateway check-policy`)."""
    parser.add_argument("file", type=Path, metavar="FILE", help="the policy file")
    _token_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca", type=Path, help="CA certificate that signs tokens (default: [tokens] ca)"
    )
    parser.add_argument(
        "--revocations",
        type=Path,
        help="signed token revocation list (default: [tokens] revocations)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pol = sub.add_parser(
        "policy",
        help="the gateway's access policy: lint it, ask who may reach what",
        description=(
            "One policy file, the same on both gateway nodes, says who (certificates, "
            "passwords, tokens, groups) may reach which device/service by which route. "
            "Anything it does not allow is refused. See docs/policy.md."
        ),
    )
    pol_sub = pol.add_subparsers(title="policy commands", metavar="POLICYCMD")
    check = pol_sub.add_parser(
        "check",
        help="lint a policy file (exit 0 ok, 2 errors)",
        description="Load the policy as the gateway would; print its rules and warnings.",
    )
    add_check_arguments(check)
    check.set_defaults(func=check_main)

    can = pol_sub.add_parser(
        "can",
        help="may PRINCIPAL reach DEVICE/SERVICE? by which rule?",
        epilog=_CAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    can.add_argument("principal", metavar="PRINCIPAL", help="user:alice, password:bob, ...")
    can.add_argument("target", metavar="DEVICE/SERVICE", help="e.g. dev1/ssh")
    can.add_argument("--route", choices=_ROUTES, help="one route (default: all)")
    can.add_argument("--from", dest="source", metavar="IP", help="the client's address")
    can.add_argument("--groups", default="", help="token: the groups its claims carry (a,b)")
    can.add_argument("-f", "--file", type=Path, required=True, help="the policy file")
    _token_arguments(can)
    can.add_argument("--json", action="store_true", help="print the answer as JSON")
    can.set_defaults(func=can_main)

    tok = sub.add_parser(
        "token",
        help="bearer tokens for the gateway's web routes, and password hashes",
        description=(
            "Tokens are signed with the cluster CA's key; gateways verify them with ca.crt "
            "alone. Revocations go to PKI_DIR/revoked-tokens.json (signed): copy it to both "
            "gateway nodes."
        ),
    )
    tok_sub = tok.add_subparsers(title="token commands", metavar="TOKENCMD")

    def pki_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pki", type=Path, default=Path("pki"), help="PKI directory (./pki)")

    iss = tok_sub.add_parser("issue", help="print a new token for NAME")
    iss.add_argument("name", help="the token's name (token:NAME in the policy)")
    iss.add_argument("--groups", default="", help="groups it carries, comma-separated")
    iss.add_argument("--ttl", default="30d", help="time to live: 30d, 12h, 15m (30d)")
    pki_dir(iss)
    iss.add_argument("--json", action="store_true", help="print token and claims as JSON")
    iss.set_defaults(func=_issue)

    rev = tok_sub.add_parser("revoke", help="revoke a token by id (jti) or all of a name's")
    rev.add_argument("jti", nargs="?", help="the token id printed by 'issue' and 'list'")
    rev.add_argument("--name", help="revoke every unexpired token issued to NAME")
    pki_dir(rev)
    rev.set_defaults(func=_revoke)

    ls = tok_sub.add_parser("list", help="list issued tokens (ids, names, expiry, revoked)")
    pki_dir(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    hp = tok_sub.add_parser(
        "hash-password",
        help="print an argon2id hash for [passwords] (password from stdin or a prompt)",
    )
    hp.set_defaults(func=_hash_password)


def _fail(msg: str, code: int = 2) -> int:
    print(f"hagate: {msg}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> Any:
    from hagate.policy import load_policy

    return load_policy(
        args.file,
        ca_cert=getattr(args, "ca", None),
        token_revocations=getattr(args, "revocations", None),
    )


def _rule_line(policy: Any, rule: Any) -> str:
    from hagate.policy.decide import where

    who = "public" if rule.public else ", ".join(w.text for w in rule.who)
    if rule.public and rule.who:
        who += " + " + ", ".join(w.text for w in rule.who)
    if rule.sources:
        who += f" from {', '.join(rule.source_text)}"
    targets = f"{','.join(rule.device_text)}/{','.join(rule.service_text)}"
    routes = ", ".join(sorted(r.value for r in rule.routes))
    return f"{where(policy.data, rule)}: {who} -> {targets} by {routes}"


def check_main(args: argparse.Namespace) -> int:
    """Lint the policy ``args.file`` (``args.ca``, ``args.revocations``, ``args.json``
    optional); 0 when the gateway would load it, 2 when not."""
    from hagate.policy import PolicyError

    as_json = bool(getattr(args, "json", False))
    try:
        policy = _load(args)
    except PolicyError as exc:
        if as_json:
            _dump({"file": str(args.file), "ok": False, "errors": [str(exc)], "warnings": []})
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    data = policy.data
    if as_json:
        _dump(
            {
                "file": str(args.file),
                "ok": True,
                "errors": [],
                "warnings": list(policy.warnings),
                "rules": [
                    {
                        "name": r.name,
                        "line": r.line,
                        "who": [w.text for w in r.who],
                        "public": r.public,
                        "devices": list(r.device_text),
                        "services": list(r.service_text),
                        "routes": sorted(x.value for x in r.routes),
                        "from": list(r.source_text),
                    }
                    for r in data.rules
                ],
                "groups": {g: [m.text for m in ms] for g, ms in data.groups.items()},
                "passwords": sorted(data.passwords),
                "tokens": policy.tokens_enabled,
                "revoked_tokens": sorted(policy.revoked_tokens()),
            }
        )
        return 0
    tokens = "on" if policy.tokens_enabled else "off (no CA certificate)"
    if policy.tokens_enabled:
        tokens += f", {len(policy.revoked_tokens())} revoked"
    print(
        f"{args.file}: ok: {len(data.rules)} rule(s), {len(data.groups)} group(s), "
        f"{len(data.passwords)} password(s); tokens {tokens}"
    )
    for rule in data.rules:
        print(f"  {_rule_line(policy, rule)}")
    for warning in policy.warnings:
        print(f"warning: {warning}")
    return 0


def can_main(args: argparse.Namespace) -> int:
    """Answer "may PRINCIPAL reach DEVICE/SERVICE?" from ``args`` (see `register`)."""
    from dataclasses import replace

    from hagate.policy import PolicyError, PrincipalKind, RouteKind
    from hagate.policy.decide import ANY_ADDRESS, parse_address

    device, sep, service = args.target.partition("/")
    if not sep or not device or not service:
        return _fail(f"{args.target!r}: say DEVICE/SERVICE, e.g. dev1/ssh")
    source = args.source or ANY_ADDRESS
    if args.source and parse_address(args.source) is None:
        return _fail(f"--from: not an IP address: {args.source!r}")
    try:
        policy = _load(args)
        principal = policy.principal(args.principal)
    except PolicyError as exc:
        return _fail(str(exc))
    extra = frozenset(g for g in args.groups.split(",") if g)
    if extra and principal.kind is not PrincipalKind.TOKEN:
        return _fail("--groups is for token: principals (their claims carry groups)")
    principal = replace(principal, groups=principal.groups | extra, claims=extra)
    routes = [RouteKind(args.route)] if args.route else list(RouteKind)
    answers = [(r, policy.decide(principal, device, service, r, source)) for r in routes]
    allowed = any(d.allowed for _r, d in answers)
    if args.json:
        _dump(
            {
                "principal": principal.label(),
                "groups": sorted(principal.groups),
                "device": device,
                "service": service,
                "from": source,
                "allowed": allowed,
                "answers": [
                    {
                        "route": r.value,
                        "allowed": d.allowed,
                        "status": d.status,
                        "rule": d.rule,
                        "reason": d.reason,
                        "challenge": d.challenge,
                    }
                    for r, d in answers
                ],
            }
        )
    else:
        for route, d in answers:
            verdict = "ALLOWED" if d.allowed else f"DENIED ({d.status})"
            print(f"{route.value:8} {verdict:13} {d.rule}: {d.reason}")
    return 0 if allowed else 1


def _dump(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _issue(args: argparse.Namespace) -> int:
    import time

    from hagate.pki.ca import PKIError
    from hagate.policy import tokenfiles
    from hagate.policy.tokens import TokenError

    try:
        ttl = tokenfiles.parse_ttl(args.ttl)
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
        token, claims = tokenfiles.issue(args.pki, args.name, groups, ttl, time.time())
    except (ValueError, PKIError, TokenError) as exc:
        return _fail(f"token issue: {exc}", 1)
    if args.json:
        _dump(
            {
                "token": token,
                "jti": claims.jti,
                "sub": claims.sub,
                "groups": sorted(claims.groups),
                "iat": claims.iat,
                "exp": claims.exp,
            }
        )
        return 0
    print(token)
    print(
        f"token:{claims.sub} id {claims.jti}, groups {','.join(sorted(claims.groups)) or '-'}, "
        f"expires {_when(claims.exp)}; send as 'Authorization: Bearer <token>'",
        file=sys.stderr,
    )
    return 0


def _when(stamp: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _revoke(args: argparse.Namespace) -> int:
    import time

    from hagate.pki.ca import PKIError
    from hagate.policy import tokenfiles
    from hagate.policy.tokens import REVOCATIONS_FILE

    if bool(args.jti) == bool(args.name):
        return _fail("token revoke: say JTI or --name NAME (one of them)", 1)
    try:
        added = tokenfiles.revoke(args.pki, args.jti, args.name, time.time())
    except PKIError as exc:
        return _fail(f"token revoke: {exc}", 1)
    for entry in added:
        print(f"revoked token {entry.jti} of {entry.sub}")
    if not added:
        print("already revoked")
    print(f"copy {args.pki / REVOCATIONS_FILE} to both gateway nodes")
    return 0


def _list(args: argparse.Namespace) -> int:
    import time

    from hagate.policy import tokenfiles, tokens
    from hagate.policy.model import PolicyError

    try:
        key = tokens.ca_public_key(args.pki / "ca.crt")
        entries = tokens.read_revocations(args.pki / tokens.REVOCATIONS_FILE, key)
        revoked = {e.jti for e in entries}
    except PolicyError as exc:
        return _fail(str(exc), 1)
    now = time.time()
    rows = []
    for c in tokenfiles.issued(args.pki):
        state = "REVOKED" if c.jti in revoked else "expired" if c.exp <= now else "valid"
        rows.append((c, state))
    if args.json:
        _dump(
            [
                {"jti": c.jti, "sub": c.sub, "groups": sorted(c.groups), "exp": c.exp, "state": s}
                for c, s in rows
            ]
        )
        return 0
    for c, state in rows:
        groups = ",".join(sorted(c.groups)) or "-"
        print(f"{c.jti}  {c.sub:24} {groups:20} until {_when(c.exp)}  {state}")
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from hagate.policy.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            return _fail("the passwords differ", 1)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        return _fail("empty password", 1)
    print(hash_password(password))
    return 0
