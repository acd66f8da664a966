"""Bearer tokens: issue, verify with ca.crt only, expiry, revocation, tampering, wrong CA."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.policy.conftest import POLICY

from hagate.pki.ca import init_ca, load_ca
from hagate.policy import (
    AuthFailure,
    Policy,
    PolicyError,
    Principal,
    PrincipalKind,
    RouteKind,
    load_policy,
    tokenfiles,
)
from hagate.policy import tokens as tk

NOW = 1_800_000_000.0
HOUR = 3600.0


def bearer(token: str) -> str:
    return f"Bearer {token}"


def issue(pki: Path, sub: str = "carol", groups: list[str] | None = None, ttl: float = HOUR) -> str:
    token, _claims = tokenfiles.issue(pki, sub, groups or [], ttl, NOW)
    return token


def test_token_verified_with_the_ca_certificate_only(policy: Policy, pki: Path) -> None:
    token = issue(pki, "carol", ["extra"])
    assert token.startswith("hgt1.") and token.count(".") == 2
    got = policy.authenticate(bearer(token), None, NOW + 1)
    assert isinstance(got, Principal)
    assert got.kind is PrincipalKind.TOKEN and got.name == "carol"
    assert got.groups == {"ops", "extra"}  # policy's groups + the token's claims
    assert got.token_id and len(got.token_id) == 16
    assert got.label() == "token:carol"
    assert got.expires == NOW + HOUR


def test_group_claims_admit(policy: Policy, pki: Path) -> None:
    zed = policy.authenticate(bearer(issue(pki, "zed", ["guests"])), None, NOW)
    assert isinstance(zed, Principal)
    assert policy.decide(zed, "cam-1", "http", RouteKind.HTTPS, "10.0.0.1").allowed


def test_expiry_rechecked_on_cached_tokens(policy: Policy, pki: Path) -> None:
    header = bearer(issue(pki, ttl=HOUR))
    assert isinstance(policy.authenticate(header, None, NOW + 10), Principal)
    expired = policy.authenticate(header, None, NOW + HOUR)
    assert isinstance(expired, AuthFailure) and expired.status == 401
    assert "expired" in expired.reason and 'error="invalid_token"' in (expired.challenge or "")


def test_expired_when_first_seen(policy: Policy, pki: Path) -> None:
    failure = policy.authenticate(bearer(issue(pki, ttl=60)), None, NOW + 61)
    assert isinstance(failure, AuthFailure) and "expired" in failure.reason


def test_not_valid_yet(policy: Policy, pki: Path) -> None:
    failure = policy.authenticate(bearer(issue(pki)), None, NOW - tk.CLOCK_SKEW - 10)
    assert isinstance(failure, AuthFailure) and "not valid yet" in failure.reason


def test_signature_check_is_cached(
    policy: Policy, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = bearer(issue(pki))
    calls: list[str] = []
    real = tk.verify_signature
    monkeypatch.setattr(tk, "verify_signature", lambda k, t: calls.append(t) or real(k, t))
    for i in range(5):
        assert isinstance(policy.authenticate(header, None, NOW + i), Principal)
    assert len(calls) == 1


def _tamper_payload(token: str, **changes: object) -> str:
    prefix, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{prefix}.{raw}.{sig}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: _tamper_payload(t, sub="alice"),
        lambda t: _tamper_payload(t, groups=["admins"]),
        lambda t: _tamper_payload(t, exp=4_000_000_000),
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
        lambda t: t.rsplit(".", 1)[0] + ".",
        lambda t: t.rsplit(".", 1)[0] + ".%%%",
        lambda t: "hgt1.x.y.z",
        lambda t: "hgt1.",
    ],
)
def test_tampered_tokens_refused(policy: Policy, pki: Path, mangle: Callable[[str], str]) -> None:
    failure = policy.authenticate(bearer(mangle(issue(pki))), None, NOW)
    assert isinstance(failure, AuthFailure) and failure.status == 401


def test_token_of_another_ca_refused(policy: Policy, tmp_path: Path) -> None:
    other = tmp_path / "other-pki"
    init_ca(other)
    failure = policy.authenticate(bearer(issue(other)), None, NOW)
    assert isinstance(failure, AuthFailure) and "signature" in failure.reason


def test_tokens_off_without_ca(write: Callable[[str], Path], pki: Path) -> None:
    policy = load_policy(write(POLICY))
    failure = policy.authenticate(bearer(issue(pki)), None, NOW)
    assert isinstance(failure, AuthFailure) and "not enabled" in failure.reason
    assert any("no CA certificate" in w for w in policy.warnings)


def test_revocation(write: Callable[[str], Path], pki: Path) -> None:
    token = issue(pki)
    keep = issue(pki, "carol")
    jti = tk.verify_signature(tk.ca_public_key(pki / "ca.crt"), token).jti
    added = tokenfiles.revoke(pki, jti, None, NOW + 5)
    assert [e.jti for e in added] == [jti]
    revocations = pki / tk.REVOCATIONS_FILE
    policy = load_policy(write(POLICY), ca_cert=pki / "ca.crt", token_revocations=revocations)
    assert policy.revoked_tokens() == {jti}
    failure = policy.authenticate(bearer(token), None, NOW + 10)
    assert isinstance(failure, AuthFailure) and "revoked" in failure.reason
    assert isinstance(policy.authenticate(bearer(keep), None, NOW + 10), Principal)
    # revoking again adds nothing; revoking by name takes the other one too
    assert tokenfiles.revoke(pki, jti, None, NOW + 6) == []
    assert len(tokenfiles.revoke(pki, None, "carol", NOW + 7)) == 1


def test_revocation_list_prunes_expired_entries(pki: Path) -> None:
    short = tk.verify_signature(tk.ca_public_key(pki / "ca.crt"), issue(pki, "a", ttl=60)).jti
    tokenfiles.revoke(pki, short, None, NOW)
    tokenfiles.revoke(pki, "ffff0000ffff0000", None, NOW + 120)  # never issued here
    jtis = {e.jti for e in tk.read_revocations(pki / tk.REVOCATIONS_FILE, None)}
    assert jtis == {"ffff0000ffff0000"}


def test_tampered_revocation_list_refused(write: Callable[[str], Path], pki: Path) -> None:
    jti = tk.verify_signature(tk.ca_public_key(pki / "ca.crt"), issue(pki)).jti
    tokenfiles.revoke(pki, jti, None, NOW)
    path = pki / tk.REVOCATIONS_FILE
    doc = json.loads(path.read_text())
    doc["body"]["revoked"] = []  # un-revoke by editing the file
    path.write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match=r"revoked-tokens\.json:1: bad signature"):
        load_policy(write(POLICY), ca_cert=pki / "ca.crt", token_revocations=path)
    path.write_text("not json")
    with pytest.raises(PolicyError, match="not a token revocation list"):
        load_policy(write(POLICY), ca_cert=pki / "ca.crt", token_revocations=path)


def test_revocation_list_of_another_ca_refused(
    write: Callable[[str], Path], pki: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    init_ca(other)
    tokenfiles.revoke(other, "abcd", None, NOW)
    with pytest.raises(PolicyError, match="bad signature"):
        load_policy(
            write(POLICY), ca_cert=pki / "ca.crt", token_revocations=other / tk.REVOCATIONS_FILE
        )


def test_missing_revocation_list_is_empty(write: Callable[[str], Path], pki: Path) -> None:
    policy = load_policy(write(POLICY), ca_cert=pki / "ca.crt", token_revocations=pki / "none.json")
    assert policy.revoked_tokens() == frozenset()


def test_token_cannot_pose_as_revocation_list_signature(pki: Path) -> None:
    # Domain separation: a signature over a token never verifies a list body, and back.
    _cert, key = load_ca(pki)
    data = tk.sign_revocations(key, [], NOW)
    sig = json.loads(data)["sig"]
    with pytest.raises(tk.TokenError):
        tk.verify_signature(key.public_key(), f"hgt1.e30.{sig}")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2592000.0), ("12h", 43200.0), ("15m", 900.0), ("90", 90.0)]
)
def test_ttl(text: str, seconds: float) -> None:
    assert tokenfiles.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1d", "1y", "d", ""])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(ValueError):
        tokenfiles.parse_ttl(text)


def test_bad_names_refused(pki: Path) -> None:
    with pytest.raises(tk.TokenError):
        tokenfiles.issue(pki, "no spaces", [], HOUR, NOW)
    with pytest.raises(tk.TokenError):
        tokenfiles.issue(pki, "ok", ["bad group"], HOUR, NOW)
