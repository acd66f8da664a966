"""The answer for one request: pure functions of a loaded policy and a principal.

Rules only allow, and anything no rule allows is refused (default deny). A device
certificate is matched only by ``device:`` entries of a rule's ``who``: never by ``*``,
a group or ``public = true``, so that one device never reaches another by accident. Raw TCP
ports carry no credentials, so only public rules open them.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from hagate.policy.model import (
    Decision,
    IPAddress,
    PolicyData,
    Principal,
    PrincipalKind,
    RouteKind,
    Rule,
    Who,
)

ANY_ADDRESS: Final = "any"  # explain(): ignore the rules' "from" lists, but say so
_USERS = frozenset({PrincipalKind.USER, PrincipalKind.PASSWORD, PrincipalKind.TOKEN})
_WEB = frozenset({RouteKind.HTTP, RouteKind.HTTPS})


def parse_address(text: str) -> IPAddress | None:
    """A client address (IPv4-mapped IPv6 as IPv4, as dual-stack sockets report it)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def who_matches(who: Who, principal: Principal) -> bool:
    if who.group is not None:
        return principal.kind in _USERS and who.group in principal.groups
    if who.kind is None:
        return principal.kind in _USERS
    return who.kind is principal.kind and who.pattern.fullmatch(principal.name) is not None


def rule_admits(rule: Rule, principal: Principal) -> bool:
    if principal.kind is PrincipalKind.DEVICE:
        return any(w.kind is PrincipalKind.DEVICE and who_matches(w, principal) for w in rule.who)
    if rule.public:
        return True
    return any(who_matches(w, principal) for w in rule.who)


def where(data: PolicyData, rule: Rule) -> str:
    return f"{data.source.rsplit('/', 1)[-1]}:{rule.line} rule '{rule.name}'"


def challenge(data: PolicyData, schemes: set[str]) -> str | None:
    parts = [f'{s} realm="{data.realm}"' for s in ("Basic", "Bearer") if s in schemes]
    return ", ".join(parts) or None


def all_schemes(data: PolicyData) -> set[str]:
    schemes = set()
    if data.passwords:
        schemes.add("Basic")
    if data.tokens:
        schemes.add("Bearer")
    return schemes


def _helpful_schemes(data: PolicyData, rule: Rule) -> set[str]:
    """The HTTP schemes whose principals some ``who`` of ``rule`` could match."""
    schemes: set[str] = set()
    for who in rule.who:
        if who.kind is None:
            schemes |= all_schemes(data)
        elif who.group is not None:
            if data.tokens:
                schemes.add("Bearer")
            members = data.groups.get(who.group, ())
            if data.passwords and any(m.kind is PrincipalKind.PASSWORD for m in members):
                schemes.add("Basic")
        elif who.kind is PrincipalKind.PASSWORD and data.passwords:
            schemes.add("Basic")
        elif who.kind is PrincipalKind.TOKEN and data.tokens:
            schemes.add("Bearer")
    return schemes


def decide(
    data: PolicyData,
    principal: Principal,
    device: str,
    service: str,
    route: RouteKind,
    client_ip: str,
) -> Decision:
    target = f"{device}/{service} by {route.value}"
    label = principal.label()
    anywhere = client_ip == ANY_ADDRESS
    address = None if anywhere else parse_address(client_ip)
    fenced: Rule | None = None
    schemes: set[str] = set()
    anonymous = principal.kind is PrincipalKind.ANONYMOUS
    for rule in data.rules:
        if not rule.matches_target(device, service, route):
            continue
        if route is RouteKind.TCP and not rule.public:
            continue  # a raw TCP port carries no credentials: only public rules open one
        if anonymous and route in _WEB and not rule.public and rule.admits_address(address):
            schemes |= _helpful_schemes(data, rule)
        if not rule_admits(rule, principal):
            continue
        if anywhere or rule.admits_address(address):
            note = (
                f" (only from {', '.join(rule.source_text)})" if anywhere and rule.sources else ""
            )
            return Decision(True, where(data, rule), 200, f"{label} may reach {target}{note}")
        fenced = fenced or rule
    if anonymous and route in _WEB and schemes:
        return Decision(
            False,
            "default deny",
            401,
            f"{target} needs credentials ({' or '.join(sorted(schemes))})",
            challenge(data, schemes),
        )
    if fenced is not None:
        nets = ", ".join(fenced.source_text)
        return Decision(
            False,
            "default deny",
            403,
            f"{where(data, fenced)} lets {label} reach {target} only from {nets}, "
            f"not from {client_ip}",
        )
    return Decision(False, "default deny", 403, f"no rule lets {label} reach {target}")
