"""What the access policy talks about: routes, principals, rules and the answers it gives.

Pure data: no file, clock or crypto here, so that the gateway, the linter and the tests all
share one vocabulary.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PolicyError(Exception):
    """A policy (or token list) that cannot be used; the message is ``FILE:LINE: why``."""


class RouteKind(Enum):
    """The ways a user reaches a device's service through the gateway."""

    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"
    CONNECT = "connect"


class PrincipalKind(Enum):
    """Where an identity comes from: each kind is its own name space (``user:alice`` is a
    user certificate, ``password:alice`` a basic-auth entry of the policy file)."""

    DEVICE = "device"
    USER = "user"
    PASSWORD = "password"
    TOKEN = "token"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, once authenticated."""

    kind: PrincipalKind
    name: str  # "" when anonymous
    groups: frozenset[str] = frozenset()
    serial: int | None = None  # certificate serial (DEVICE/USER)
    token_id: str | None = None  # TOKEN: the jti, for revocation
    expires: float | None = None  # TOKEN: exp, so that streams can be cut when it passes
    claims: frozenset[str] = frozenset()  # TOKEN: the groups its signed claims carry

    def label(self) -> str:
        if self.kind is PrincipalKind.ANONYMOUS:
            return "anonymous"
        return f"{self.kind.value}:{self.name}"


ANONYMOUS = Principal(PrincipalKind.ANONYMOUS, "")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one (principal, device, service, route, client address)."""

    allowed: bool
    rule: str  # "policy.toml:14 rule 'ops-web'" or "default deny"
    status: int  # 200 allowed, 401 a credential could help, 403 refused
    reason: str
    challenge: str | None = None  # WWW-Authenticate value for a 401


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Credentials were presented and are not good (wrong, expired, revoked, malformed)."""

    status: int
    reason: str
    challenge: str | None


# A principal name: user and token names as the PKI allows them; device names are DNS labels.
PRINCIPAL_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._@-]{0,62}[A-Za-z0-9])?$")
RULE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Who:
    """One entry of a rule's ``who`` (or a group member): a kind and a name glob.

    ``kind`` None is ``"*"`` (any authenticated user: never a device); ``group`` set means
    ``group:NAME``.
    """

    text: str
    kind: PrincipalKind | None
    pattern: re.Pattern[str]
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rule]]``: an allow rule. Rules only ever allow; anything no rule allows is
    refused, so their order does not change an answer (only which rule is named)."""

    name: str
    line: int
    who: tuple[Who, ...]
    devices: tuple[re.Pattern[str], ...]
    services: tuple[re.Pattern[str], ...]
    routes: frozenset[RouteKind]
    public: bool = False
    sources: tuple[IPNetwork, ...] = ()  # "from"; empty = any address
    device_text: tuple[str, ...] = ()
    service_text: tuple[str, ...] = ()
    source_text: tuple[str, ...] = ()

    def matches_target(self, device: str, service: str, route: RouteKind) -> bool:
        return (
            route in self.routes
            and any(p.fullmatch(device) for p in self.devices)
            and any(p.fullmatch(service) for p in self.services)
        )

    def admits_address(self, address: IPAddress | None) -> bool:
        if not self.sources:
            return True
        return address is not None and any(address in net for net in self.sources)


@dataclass(frozen=True, slots=True)
class PolicyData:
    """A loaded policy file, checked; what `Policy` decides from."""

    source: str  # the file name as given, or "<empty>"
    realm: str = "hagate"
    groups: dict[str, tuple[Who, ...]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # name -> argon2 hash
    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = ()
    tokens: bool = False  # a CA certificate is known: bearer tokens can be verified
