"""Decisions: default deny, every principal kind, public + from, devices kept apart, 401/403."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.policy.conftest import POLICY as POLICY_TEXT

from hagate.policy import (
    ANONYMOUS,
    Policy,
    Principal,
    PrincipalKind,
    RouteKind,
    empty_policy,
    load_policy,
)

H, S, T, C = RouteKind.HTTP, RouteKind.HTTPS, RouteKind.TCP, RouteKind.CONNECT
IP = "10.9.8.7"


def p(policy: Policy, label: str, extra: frozenset[str] = frozenset()) -> Principal:
    principal = policy.principal(label)
    return Principal(principal.kind, principal.name, principal.groups | extra, claims=extra)


@pytest.mark.parametrize(
    "label", ["user:alice", "password:bob", "token:carol", "password:dave", "token:zed"]
)
def test_each_kind_allowed_by_its_rule(policy: Policy, label: str) -> None:
    groups = frozenset({"guests"}) if label == "token:zed" else frozenset()
    device = "cam-1" if label in ("password:dave", "token:zed") else "dev1"
    d = policy.decide(p(policy, label, groups), device, "http", S, IP)
    assert d.allowed and d.status == 200, d
    assert d.rule.startswith("policy.toml:")
    assert label in d.reason


@pytest.mark.parametrize(
    ("label", "device", "service", "route"),
    [
        ("user:mallory", "dev1", "http", S),  # not in any rule
        ("password:dave", "dev1", "http", S),  # dave only reaches cameras
        ("password:dave", "cam-1", "ssh", S),  # ... and only their web UI
        ("password:dave", "cam-1", "http", C),  # ... and only by https
        ("password:dave", "cam-12", "http", S),  # cam-? is one character
        ("token:zed", "cam-1", "http", S),  # no group claims
        ("user:alice", "dev1", "ssh", T),  # raw TCP carries no credentials
        ("device:dev3", "dev1", "ssh", C),  # device to device
        ("device:monitor", "dev1", "ssh", C),  # only metrics
    ],
)
def test_refused_with_403(
    policy: Policy, label: str, device: str, service: str, route: RouteKind
) -> None:
    d = policy.decide(p(policy, label), device, service, route, IP)
    assert not d.allowed and d.status == 403 and d.challenge is None, d
    assert d.rule == "default deny"


def test_user_and_password_namespaces_are_apart(policy: Policy) -> None:
    # user:alice is in ops; a basic-auth "alice" (no such entry) or token "alice" is not.
    assert policy.decide(p(policy, "user:alice"), "dev1", "x", C, IP).allowed
    assert not policy.decide(p(policy, "token:alice"), "dev1", "x", C, IP).allowed
    assert not policy.decide(p(policy, "password:alice"), "dev1", "x", C, IP).allowed


def test_device_to_device_refused_unless_named(policy: Policy) -> None:
    dev3 = Principal(PrincipalKind.DEVICE, "dev3", serial=3)
    for route in RouteKind:
        assert not policy.decide(dev3, "dev1", "ssh", route, IP).allowed
    monitor = Principal(PrincipalKind.DEVICE, "monitor", serial=4)
    d = policy.decide(monitor, "dev1", "metrics", C, IP)
    assert d.allowed and "gw-monitor" in d.rule


def test_device_never_matched_by_star_group_or_public(write: Callable[[str], Path]) -> None:
    text = """\
[groups]
all = ["user:*", "token:*", "password:*"]
[[rule]]
name = "star"
who = ["*", "group:all"]
devices = ["*"]
services = ["*"]
routes = ["connect", "https"]
[[rule]]
name = "open"
devices = ["*"]
services = ["*"]
routes = ["connect", "https"]
public = true
"""
    policy = load_policy(write(text))
    dev = Principal(PrincipalKind.DEVICE, "user")  # even a device named like a user
    for route in (C, S):
        assert not policy.decide(dev, "dev1", "ssh", route, IP).allowed
        assert policy.decide(p(policy, "user:x"), "dev1", "ssh", route, IP).allowed
        assert policy.decide(ANONYMOUS, "dev1", "ssh", route, IP).allowed


def test_public_with_from(policy: Policy) -> None:
    inside = policy.decide(ANONYMOUS, "kiosk-2", "http", S, "192.0.2.77")
    assert inside.allowed and "lobby-web" in inside.rule
    mapped = policy.decide(ANONYMOUS, "kiosk-2", "http", S, "::ffff:192.0.2.77")
    assert mapped.allowed
    outside = policy.decide(ANONYMOUS, "kiosk-2", "http", S, "198.51.100.1")
    assert not outside.allowed
    # ops could get in with a credential: a 401 that says how.
    assert outside.status == 401
    assert outside.challenge == 'Basic realm="hagate", Bearer realm="hagate"'
    assert not policy.decide(ANONYMOUS, "kiosk-2", "http", S, "not-an-ip").allowed
    # an authenticated user outside the fence is refused by this rule too, and told why
    dave = policy.decide(p(policy, "password:dave"), "kiosk-2", "http", S, "198.51.100.1")
    assert dave.status == 403 and "only from 192.0.2.0/24" in dave.reason


def test_anonymous_401_only_when_a_credential_could_help(policy: Policy) -> None:
    web = policy.decide(ANONYMOUS, "dev1", "http", H, IP)
    assert web.status == 401 and web.challenge and "Basic" in web.challenge
    # no web rule on connect/tcp: 403, no challenge
    for route in (C, T):
        d = policy.decide(ANONYMOUS, "dev1", "ssh", route, IP)
        assert d.status == 403 and d.challenge is None


def test_challenge_lists_only_usable_schemes(write: Callable[[str], Path]) -> None:
    certs_only = load_policy(
        write(
            '[[rule]]\nname = "a"\nwho = ["user:alice"]\ndevices = ["*"]\n'
            'services = ["*"]\nroutes = ["https"]\n'
        )
    )
    d = certs_only.decide(ANONYMOUS, "dev1", "http", S, IP)
    assert d.status == 403  # a 401 needs a scheme; only a client certificate would do


def test_public_tcp(policy: Policy) -> None:
    assert policy.tcp_public("dev1", "telnet")
    assert not policy.tcp_public("dev1", "ssh")
    assert not policy.tcp_public("kiosk-1", "http")  # public, but not on tcp
    d = policy.decide(ANONYMOUS, "dev1", "telnet", T, IP)
    assert d.allowed and "open-telnet" in d.rule


def test_default_deny_everywhere() -> None:
    empty = empty_policy()
    assert empty.source == "<empty>"
    for principal in (ANONYMOUS, Principal(PrincipalKind.USER, "root")):
        for route in RouteKind:
            d = empty.decide(principal, "dev1", "http", route, IP)
            assert (d.allowed, d.status, d.rule) == (False, 403, "default deny")
    assert not empty.tcp_public("dev1", "ssh")


def test_explain_ignores_from_but_says_so(policy: Policy) -> None:
    d = policy.explain("anonymous", "kiosk-1", "http", S)
    assert d.allowed and "only from 192.0.2.0/24" in d.reason
    assert not policy.explain("anonymous", "kiosk-1", "http", S, "203.0.113.9").allowed
    assert policy.explain("user:alice", "dev1", "ssh", C).allowed
    assert not policy.explain("device:dev3", "dev1", "ssh", C).allowed


def test_decisions_are_cached(policy: Policy) -> None:
    alice = p(policy, "user:alice")
    assert policy.decide(alice, "dev1", "ssh", C, IP) is policy.decide(alice, "dev1", "ssh", C, IP)


def test_first_allowing_rule_is_named(write: Callable[[str], Path]) -> None:
    rule = '[[rule]]\nname = "{}"\nwho = ["user:a"]\ndevices = ["*"]\nservices = ["*"]\n'
    text = rule.format("one") + 'routes = ["connect"]\n' + rule.format("two")
    text += 'routes = ["connect"]\n'
    d = load_policy(write(text)).explain("user:a", "d", "s", C)
    assert d.rule == "policy.toml:1 rule 'one'"


def test_groups_come_from_the_current_policy(
    policy: Policy, write: Callable[[str], Path], pki: Path
) -> None:
    # A principal built without groups (from a bare certificate) is judged by its groups here.
    bare = Principal(PrincipalKind.USER, "alice", serial=1)
    assert policy.decide(bare, "dev1", "ssh", C, IP).allowed
    # A principal authenticated under the old policy, re-checked after a reload that takes
    # alice out of ops, is refused: stale groups it carries do not count.
    old = policy.principal("user:alice")
    assert old.groups == {"ops"}
    reloaded = load_policy(write(POLICY_TEXT.replace('"user:alice", ', "")), ca_cert=pki / "ca.crt")
    assert not reloaded.decide(old, "dev1", "ssh", C, IP).allowed
    # ... while a token's signed group claims still count.
    guests = frozenset({"guests"})
    token = Principal(PrincipalKind.TOKEN, "zed", guests, claims=guests)
    assert reloaded.decide(token, "cam-1", "http", S, IP).allowed
    forged = Principal(PrincipalKind.TOKEN, "zed", guests)  # groups, no claims
    assert not reloaded.decide(forged, "cam-1", "http", S, IP).allowed


def test_removed_password_entry_refused(write: Callable[[str], Path], pki: Path) -> None:
    bob = Principal(PrincipalKind.PASSWORD, "bob", frozenset({"ops"}))
    before = load_policy(write(POLICY_TEXT))
    assert before.decide(bob, "dev1", "http", S, IP).allowed
    lines = [line for line in POLICY_TEXT.splitlines(True) if not line.startswith("bob = ")]
    after = load_policy(write("".join(lines)))  # bob stays in ops: only his hash is gone
    d = after.decide(Principal(PrincipalKind.PASSWORD, "bob"), "dev1", "http", S, IP)
    assert not d.allowed and d.status == 403 and "no longer in [passwords]" in d.reason
