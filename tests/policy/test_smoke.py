"""The API others import: a policy loads, allows the right principal and refuses others."""

from __future__ import annotations

import base64

from hagate.net.tls import Identity
from hagate.pki.ca import Role
from hagate.policy import ANONYMOUS, Policy, Principal, PrincipalKind, RouteKind, empty_policy


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_user_certificate_allowed(policy: Policy) -> None:
    alice = policy.authenticate(None, Identity(Role.USER, "alice", 7), 0.0)
    assert isinstance(alice, Principal)
    assert alice.label() == "user:alice" and alice.groups == {"ops"}
    d = policy.decide(alice, "dev1", "ssh", RouteKind.CONNECT, "10.0.0.1")
    assert d.allowed and d.status == 200 and d.rule == "policy.toml:11 rule 'ops-everything'"


def test_password_allowed(policy: Policy) -> None:
    bob = policy.authenticate(basic("bob", "bob-secret"), None, 0.0)
    assert isinstance(bob, Principal) and bob.kind is PrincipalKind.PASSWORD
    assert policy.decide(bob, "dev1", "http", RouteKind.HTTPS, "10.0.0.1").allowed


def test_empty_policy_denies() -> None:
    d = empty_policy().decide(ANONYMOUS, "dev1", "http", RouteKind.HTTP, "127.0.0.1")
    assert not d.allowed and d.status == 403 and d.rule == "default deny"
