"""The access decision of every request, on its own: route by Host, authenticate, ask the
policy, take a stream lease. A keep-alive connection that changes Host, credentials or device
gets a fresh decision for each request, and every request takes its own lease (limits, rates).

One thing is remembered per connection (:class:`Allowed`): under the gateway's current policy
object, for the connection's last credential (its Authorization field, or none), the principal
and the (device, service) pairs the policy allowed it. The policy answers the same for those
inputs until it is replaced (its decision cache is per object and never expires), so the memo
answers as the policy would. A credential is still checked on every request by the policy's
own cache (``authenticate_cached``: its expiry, a token's ``exp``): the memo is used only when
that gives back the very principal it was made for. Refusals are never remembered: each is
decided, answered and logged anew.

Refusals are the gateway's own answers (401/403/404/421/429/503), logged as refusals.

``client_ip`` is the request's client: the TCP peer, or behind a trusted proxy the client it
named (clientip.py); ``via`` is then that proxy, for the access log (None: no proxy, and the
hub is called as it always was).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.gateway.http.host import HostError, Route
from hagate.gateway.http.hub import Lease
from hagate.gateway.http.request import Request
from hagate.gateway.session import StreamError
from hagate.net.tls import Identity
from hagate.policy.model import ANONYMOUS, AuthFailure, Decision, Principal, RouteKind

if TYPE_CHECKING:
    from hagate.gateway.http.front import HttpFront
    from hagate.gateway.http.hub import AccessPolicy, Hub

ALLOWED_MAX = 16  # (device, service) decisions one connection remembers


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    challenge: str | None = None


Grant = tuple[Route, Lease, bool]  # the route, its lease, whether to strip Authorization


class Allowed:
    """One connection's memo: who its credential ``auth`` (None: no Authorization field) is
    under ``policy``, whether that credential is the gateway's (stripped), and the
    (device, service) pairs that policy allowed it."""

    __slots__ = ("auth", "decisions", "policy", "strip", "who")

    def __init__(
        self, policy: AccessPolicy, auth: bytes | None, who: Principal, strip: bool
    ) -> None:
        self.policy = policy
        self.auth = auth
        self.who = who
        self.strip = strip
        self.decisions: dict[tuple[str, str], Decision] = {}


def authorize_known(
    front: HttpFront,
    req: Request,
    client_ip: str,
    sni: str | None,
    cert: Identity | None,
    allowed: Allowed | None,
    via: str | None = None,
) -> Grant | Refusal | None:
    """The answer for a request the connection's memo knows the policy allows, else None
    (then :func:`authorize` decides). The lease is taken as :func:`authorize` takes it."""
    if allowed is None:
        return None
    hub = front.hub
    policy = hub.policy
    if policy is not allowed.policy or req.authorization != allowed.auth:
        return None  # reloaded, or another credential: decide afresh
    if cert is not None and cert.serial in hub.revoked:
        return None  # authorize refuses it
    who = allowed.who
    if req.authorization is not None:
        # The credential is judged by the policy's cache each time (expiry, token exp);
        # only the very principal the memo was made for is taken as known.
        auth = req.authorization.decode("latin-1")
        if policy.authenticate_cached(auth, cert, time.time()) is not who:
            return None
    try:
        name, route = front.routes.route(req.host)
    except HostError:
        return None
    if route is None or (sni is not None and name != sni):
        return None
    device = route.device
    service = hub.service_name(device, route.service)
    decision = allowed.decisions.get((device, service))
    if decision is None:
        return None
    kind = front.route_kind
    lease = take_lease(hub, via, who, client_ip, device, service, kind, decision.rule)
    if isinstance(lease, Refusal):
        return lease
    return route, lease, allowed.strip


def refused(
    hub: Hub,
    via: str | None,
    who: Principal,
    client_ip: str,
    device: str,
    service: str,
    kind: RouteKind,
    rule: str,
    status: int,
    reason: str,
) -> None:
    """The hub logs a refusal (with the proxy it came through, if any)."""
    hub.log_refusal(who, client_ip, device, service, kind, rule, status, reason, via=via or "")


def take_lease(
    hub: Hub,
    via: str | None,
    who: Principal,
    client_ip: str,
    device: str,
    service: str,
    kind: RouteKind,
    rule: str,
) -> Lease | Refusal:
    """The request's own stream lease, or the refusal (logged) when a limit says no."""
    try:
        return hub.admit(device, service, kind, who, client_ip, rule, via=via or "")
    except StreamError as exc:
        refused(hub, via, who, client_ip, device, service, kind, exc.reason, exc.code, exc.message)
        return Refusal(exc.code, exc.message)


Known = tuple["AccessPolicy", Principal, str, str, Decision]  # what an allowed grant rests on


def remember(allowed: Allowed | None, req: Request, strip: bool, known: Known) -> Allowed:
    """``allowed`` with one more allowed decision (a fresh memo if the policy, the
    credential or the principal changed)."""
    policy, who, device, service, decision = known
    if (
        allowed is None
        or allowed.policy is not policy
        or allowed.who is not who
        or allowed.auth != req.authorization
    ):
        allowed = Allowed(policy, req.authorization, who, strip)
    elif len(allowed.decisions) >= ALLOWED_MAX:
        allowed.decisions.clear()
    allowed.decisions[device, service] = decision
    return allowed


async def authorize(
    front: HttpFront,
    req: Request,
    client_ip: str,
    sni: str | None,
    cert: Identity | None,
    allowed: Allowed | None = None,
    via: str | None = None,
) -> tuple[Grant | Refusal, Allowed | None]:
    """A lease for ``req``, or why not; and the connection's memo, updated if it was allowed."""
    grant = await _authorize(front, req, client_ip, sni, cert, via)
    if isinstance(grant, Refusal):
        return grant, allowed
    return grant[0], remember(allowed, req, grant[0][2], grant[1])


async def _authorize(
    front: HttpFront,
    req: Request,
    client_ip: str,
    sni: str | None,
    cert: Identity | None,
    via: str | None,
) -> tuple[Grant, Known] | Refusal:
    try:
        name, route = front.routes.route(req.host)
    except HostError as exc:
        return Refusal(exc.status, exc.message)
    if route is None:
        return Refusal(404, f"unknown host {name!r}: use <device>.{front.domain}")
    if sni is not None and name != sni:
        return Refusal(421, "TLS server name and Host differ")
    hub = front.hub
    kind = front.route_kind
    if cert is not None and cert.serial in hub.revoked:
        # The CRL changed since this connection's handshake: its certificate is no one now.
        device = route.device
        service = hub.service_name(device, route.service)
        why = f"certificate of {cert.role.value}:{cert.name} revoked"
        refused(hub, via, ANONYMOUS, client_ip, device, service, kind, "", 403, why)
        return Refusal(403, "certificate revoked")
    policy = hub.policy
    auth = req.authorization.decode("latin-1") if req.authorization is not None else None
    # A password seen for the first time is checked with argon2 off the event loop, a few at
    # a time and rate-limited per address (gateway/auth.py); a known one is a cache hit.
    who = await hub.authenticate(policy, auth, cert, client_ip)
    device = route.device
    service = hub.service_name(device, route.service)
    if isinstance(who, AuthFailure):
        refused(hub, via, ANONYMOUS, client_ip, device, service, kind, "", who.status, who.reason)
        return Refusal(who.status, who.reason, who.challenge)
    decision = policy.decide(who, device, service, kind, client_ip)
    if not decision.allowed:
        status = decision.status if decision.status in (401, 403) else 403
        refused(
            hub, via, who, client_ip, device, service, kind, decision.rule, status, decision.reason
        )
        return Refusal(status, decision.reason, decision.challenge)
    lease = take_lease(hub, via, who, client_ip, device, service, kind, decision.rule)
    if isinstance(lease, Refusal):
        return lease
    # Credentials meant for the gateway stop here; a device's own auth passes through.
    grant = (route, lease, policy.is_gateway_credential(auth))
    return grant, (policy, who, device, service, decision)
