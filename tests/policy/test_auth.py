"""authenticate(): Basic against argon2 hashes (cached), certificates, headers not ours."""

from __future__ import annotations

import base64

import pytest

from hagate.net.tls import Identity
from hagate.pki.ca import Role
from hagate.policy import ANONYMOUS, AuthFailure, Policy, Principal, PrincipalKind, empty_policy
from hagate.policy import passwords as pw
from hagate.policy import policy as policy_module


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = pw.verify_password

    def counting(hashed: str, password: str) -> bool:
        calls.append(password)
        return real(hashed, password)

    monkeypatch.setattr(pw, "verify_password", counting)
    return calls


def test_password_ok_and_cached(policy: Policy, argon2_calls: list[str]) -> None:
    header = basic("bob", "bob-secret")
    first = policy.authenticate(header, None, 100.0)
    assert first == Principal(PrincipalKind.PASSWORD, "bob", frozenset({"ops"}))
    assert argon2_calls == ["bob-secret"]
    assert policy.authenticate(header, None, 101.0) == first
    assert policy.authenticate_cached(header, None, 102.0) == first
    assert argon2_calls == ["bob-secret"]  # the second time does not run argon2
    # after the TTL the header is verified again
    later = 100.0 + policy_module.PASSWORD_TTL + 1
    assert policy.authenticate_cached(header, None, later) is None
    assert policy.authenticate(header, None, later) == first
    assert len(argon2_calls) == 2


def test_cache_holds_no_plaintext(policy: Policy) -> None:
    policy.authenticate(basic("bob", "bob-secret"), None, 0.0)
    keys = list(policy._auth._data)
    assert keys and all(isinstance(k, bytes) and len(k) == 32 for k in keys)
    assert not any(b"bob-secret" in k for k in keys)


def test_wrong_password(policy: Policy, argon2_calls: list[str]) -> None:
    header = basic("bob", "guess")
    failure = policy.authenticate(header, None, 0.0)
    assert isinstance(failure, AuthFailure)
    assert failure.status == 401 and "wrong password" in failure.reason
    assert failure.challenge == 'Basic realm="hagate", Bearer realm="hagate"'
    assert "guess" not in failure.reason
    # the same wrong header again is refused without argon2 (a browser retrying)
    assert isinstance(policy.authenticate(header, None, 1.0), AuthFailure)
    assert argon2_calls == ["guess"]


def test_unknown_user_costs_a_verification_too(policy: Policy, argon2_calls: list[str]) -> None:
    failure = policy.authenticate(basic("eve", "x"), None, 0.0)
    assert isinstance(failure, AuthFailure) and failure.status == 401
    assert "unknown user" in failure.reason
    assert argon2_calls == ["x"]  # timing does not tell unknown names from wrong passwords


@pytest.mark.parametrize(
    "header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic"]
)
def test_malformed_basic(policy: Policy, header: str) -> None:
    failure = policy.authenticate(header, None, 0.0)
    assert isinstance(failure, AuthFailure) and failure.status == 401
    assert "malformed" in failure.reason


def test_password_with_colon_and_unicode(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(pw, "verify_password", lambda h, p: seen.append((h, p)) or True)
    principal = policy.authenticate(basic("bob", "a:b:é"), None, 0.0)
    assert isinstance(principal, Principal) and seen[0][1] == "a:b:é"


def test_no_credentials_is_anonymous(policy: Policy) -> None:
    assert policy.authenticate(None, None, 0.0) is ANONYMOUS
    assert policy.authenticate("", None, 0.0) is ANONYMOUS


def test_headers_that_are_not_ours(policy: Policy) -> None:
    # Another scheme, or a Bearer that is not a hagate token, belongs to the device.
    for header in ("Digest username=x", "Bearer eyJhbGciOi.device.jwt", "Negotiate abc"):
        assert policy.authenticate(header, None, 0.0) is ANONYMOUS
        assert not policy.is_gateway_credential(header)
    assert policy.is_gateway_credential(basic("bob", "x"))
    assert policy.is_gateway_credential("Bearer hgt1.a.b")
    # without [passwords], Basic is the device's own (a router's login passes through)
    empty = empty_policy()
    assert empty.authenticate(basic("admin", "admin"), None, 0.0) is ANONYMOUS
    assert not empty.is_gateway_credential(basic("admin", "admin"))


def test_certificates(policy: Policy) -> None:
    alice = policy.authenticate(None, Identity(Role.USER, "alice", 0x10), 0.0)
    assert alice == Principal(PrincipalKind.USER, "alice", frozenset({"ops"}), serial=0x10)
    dev = policy.authenticate(None, Identity(Role.DEVICE, "dev3", 0x11), 0.0)
    assert dev == Principal(PrincipalKind.DEVICE, "dev3", serial=0x11)
    assert dev.label() == "device:dev3"
    server = policy.authenticate(None, Identity(Role.SERVER, "gw", 0x12), 0.0)
    assert isinstance(server, AuthFailure) and server.status == 403


def test_certificate_wins_over_header(policy: Policy, argon2_calls: list[str]) -> None:
    got = policy.authenticate(basic("bob", "wrong"), Identity(Role.USER, "alice", 1), 0.0)
    assert isinstance(got, Principal) and got.label() == "user:alice"
    assert argon2_calls == []


def test_labels() -> None:
    assert ANONYMOUS.label() == "anonymous"
    for kind in ("user", "password", "token", "device"):
        assert Principal(PrincipalKind(kind), "x").label() == f"{kind}:x"


def test_hash_password_round_trip() -> None:
    hashed = pw.hash_password("s3cret")
    assert hashed.startswith("$argon2id$") and pw.check_hash(hashed) is None
    assert pw.verify_password(hashed, "s3cret")
    assert not pw.verify_password(hashed, "S3cret")
