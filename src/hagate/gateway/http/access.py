"""The access decision of every request, on its own: route by Host, authenticate, ask the
policy, take a stream lease. Nothing is remembered per connection: a keep-alive connection
that changes Host, credentials or device gets a fresh decision for each request.

Refusals are the gateway's own answers (401/403/404/421/429/503), logged as refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hagate.gateway.http.host import HostError, Route
from hagate.gateway.http.hub import Lease
from hagate.gateway.http.request import Request
from hagate.gateway.session import StreamError
from hagate.net.tls import Identity
from hagate.policy.model import ANONYMOUS, AuthFailure

if TYPE_CHECKING:
    from hagate.gateway.http.front import HttpFront


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    challenge: str | None = None


Grant = tuple[Route, Lease, bool]  # the route, its lease, whether to strip Authorization


async def authorize(
    front: HttpFront, req: Request, client_ip: str, sni: str | None, cert: Identity | None
) -> Grant | Refusal:
    """A lease for ``req``, or why not."""
    try:
        name, route = front.routes.route(req.host)
    except HostError as exc:
        return Refusal(exc.status, exc.message)
    if route is None:
        return Refusal(404, f"unknown host {name!r}: use <device>.{front.domain}")
    if sni is not None and name != sni:
        return Refusal(421, "TLS server name and Host differ")
    hub = front.hub
    policy = hub.policy
    auth = req.authorization.decode("latin-1") if req.authorization is not None else None
    # A password seen for the first time is checked with argon2 off the event loop, a few at
    # a time and rate-limited per address (gateway/auth.py); a known one is a cache hit.
    who = await hub.authenticate(policy, auth, cert, client_ip)
    device = route.device
    service = hub.service_name(device, route.service)
    kind = front.route_kind
    if isinstance(who, AuthFailure):
        hub.log_refusal(ANONYMOUS, client_ip, device, service, kind, "", who.status, who.reason)
        return Refusal(who.status, who.reason, who.challenge)
    decision = policy.decide(who, device, service, kind, client_ip)
    if not decision.allowed:
        status = decision.status if decision.status in (401, 403) else 403
        hub.log_refusal(
            who, client_ip, device, service, kind, decision.rule, status, decision.reason
        )
        return Refusal(status, decision.reason, decision.challenge)
    try:
        lease = hub.admit(device, service, kind, who, client_ip, decision.rule)
    except StreamError as exc:
        hub.log_refusal(who, client_ip, device, service, kind, exc.reason, exc.code, exc.message)
        return Refusal(exc.code, exc.message)
    # Credentials meant for the gateway stop here; a device's own auth passes through.
    return route, lease, policy.is_gateway_credential(auth)
