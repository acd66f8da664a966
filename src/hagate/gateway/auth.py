"""Who a user is, without letting password checks stall the event loop or burn the CPU.

A verified credential is answered from the policy's cache in microseconds. A password seen
for the first time needs argon2 (~50-160 ms of CPU by design): that runs in a worker thread,
at most ``MAX_SLOW`` at once, and each client address gets ``SLOW_BURST`` such checks and then
``SLOW_RATE`` per second; beyond that it is told 429 instead of making the node hash for it.
A wrong password is never cached, so this is also the brake on password guessing.

The client address is the request's client as the HTTP front sees it: behind a reverse proxy
in ``[listen] trusted_proxies`` the user the proxy named (so one guesser behind nginx does not
use up every user's checks, and every user is not one address), else the TCP peer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from hagate.gateway.ratelimit import RateLimiter
from hagate.net.tls import Identity
from hagate.policy import AuthFailure, Principal

if TYPE_CHECKING:
    from hagate.gateway.http_front import AccessPolicy

MAX_SLOW = 2  # argon2 checks running at once (this machine has two cores)
SLOW_RATE = 1.0  # per client address, per second, after the burst
SLOW_BURST = 10.0


class Authenticator:
    def __init__(self) -> None:
        self._slow = asyncio.Semaphore(MAX_SLOW)
        self._per_client = RateLimiter(SLOW_RATE, SLOW_BURST)
        self.slow_checks = 0
        self.throttled = 0

    async def authenticate(
        self, policy: AccessPolicy, authorization: str | None, cert: Identity | None, client_ip: str
    ) -> Principal | AuthFailure:
        now = time.time()
        found = policy.authenticate_cached(authorization, cert, now)
        if found is not None:
            return found
        if not self._per_client.allow(client_ip, time.monotonic()):
            self.throttled += 1
            return AuthFailure(429, "too many password checks from this address; wait", None)
        async with self._slow:
            self.slow_checks += 1
            return await asyncio.to_thread(policy.authenticate, authorization, cert, now)
