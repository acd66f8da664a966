"""A micro benchmark of the hot path, printed (run with -s to see it), not asserted:
authenticate + decide of an already verified credential, per request."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from hagate.net.tls import Identity
from hagate.pki.ca import Role
from hagate.policy import Policy, Principal, RouteKind, tokenfiles

N = 20_000


def _per_call(policy: Policy, header: str | None, cert: Identity | None) -> float:
    assert isinstance(policy.authenticate(header, cert, 1.0), Principal)  # warm the caches
    start = time.perf_counter()
    for _ in range(N):
        principal = policy.authenticate(header, cert, 2.0)
        policy.decide(principal, "dev1", "http", RouteKind.HTTPS, "10.0.0.1")  # type: ignore[arg-type]
    return (time.perf_counter() - start) / N * 1e6


def test_hot_path_micro_benchmark(policy: Policy, pki: Path) -> None:
    token, _ = tokenfiles.issue(pki, "carol", [], 3600, 0.0)
    rows = {
        "basic (cached argon2)": ("Basic " + base64.b64encode(b"bob:bob-secret").decode(), None),
        "bearer (cached signature)": (f"Bearer {token}", None),
        "client certificate": (None, Identity(Role.USER, "alice", 1)),
    }
    print()
    for name, (header, cert) in rows.items():
        print(f"policy hot path, {name:26}: {_per_call(policy, header, cert):6.2f} µs/request")
