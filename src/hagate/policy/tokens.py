"""Bearer tokens and their revocation list, signed with the cluster CA's key.

A token is ``hgt1.<payload>.<signature>`` (base64url, no padding): the payload is JSON
``{"sub", "groups", "iat", "exp", "jti"}``, the signature ECDSA P-256/SHA-256 (raw r||s) over
``hgt1.<payload>``. The gateway needs only the CA *certificate* to verify, so both nodes check
the same tokens with no shared state and neither needs the CA key.

The revocation list (``revoked-tokens.json``) is JSON ``{"body": {...}, "sig": "..."}``, the
signature covering ``hgt1-revocations.`` + the canonical JSON of the body: a different prefix
than tokens, so that neither can be passed off as the other. A tampered list is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from hagate.policy.model import PRINCIPAL_NAME_RE, PolicyError

PREFIX = "hgt1."
_REVOCATION_PREFIX = b"hgt1-revocations."
REVOCATIONS_FORMAT = "hagate-token-revocations/1"
REVOCATIONS_FILE = "revoked-tokens.json"
CLOCK_SKEW = 300.0  # seconds a token's iat may be in the future (the nodes' clocks differ)
_P256_BYTES = 32


class TokenError(Exception):
    """A token that is not good; the message says why, for the 401 and the log."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    groups: frozenset[str]
    iat: int
    exp: int
    jti: str


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def _verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 2 * _P256_BYTES:
        return False
    r = int.from_bytes(signature[:_P256_BYTES], "big")
    s = int.from_bytes(signature[_P256_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def ca_public_key(ca_cert: Path) -> ec.EllipticCurvePublicKey:
    """The key tokens are verified with, from the CA certificate alone."""
    try:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"{ca_cert}:1: cannot read the CA certificate: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PolicyError(f"{ca_cert}:1: the CA key is not ECDSA; tokens need the hagate CA")
    return key


def issue_token(
    key: ec.EllipticCurvePrivateKey,
    sub: str,
    groups: frozenset[str] | set[str] | list[str],
    now: float,
    ttl: float,
    jti: str | None = None,
) -> tuple[str, TokenClaims]:
    """A signed token for ``sub``, valid from ``now`` for ``ttl`` seconds."""
    if not PRINCIPAL_NAME_RE.match(sub):
        raise TokenError(f"invalid token name {sub!r} (letters, digits, '._@-')")
    bad = [g for g in groups if not PRINCIPAL_NAME_RE.match(g)]
    if bad:
        raise TokenError(f"invalid group name {bad[0]!r}")
    if ttl <= 0:
        raise TokenError("the time to live must be positive")
    claims = TokenClaims(
        sub, frozenset(groups), int(now), int(now + ttl), jti or secrets.token_hex(8)
    )
    payload = {
        "sub": claims.sub,
        "groups": sorted(claims.groups),
        "iat": claims.iat,
        "exp": claims.exp,
        "jti": claims.jti,
    }
    body = PREFIX + _b64e(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64e(_sign(key, body.encode('ascii')))}", claims


def verify_signature(key: ec.EllipticCurvePublicKey, token: str) -> TokenClaims:
    """The claims of a well-signed token (expiry is the caller's: it changes with time)."""
    if not token.startswith(PREFIX) or token.count(".") != 2:
        raise TokenError("not a hagate token")
    body, _, sig = token.rpartition(".")
    try:
        signature = _b64d(sig)
        raw = _b64d(body[len(PREFIX) :])
    except (binascii.Error, ValueError):
        raise TokenError("malformed token") from None
    if not _verify(key, signature, body.encode("ascii", "replace")):
        raise TokenError("bad token signature (not issued by this cluster's CA)")
    try:
        payload = json.loads(raw)
        claims = TokenClaims(
            _str(payload, "sub"),
            frozenset(_strings(payload, "groups")),
            _int(payload, "iat"),
            _int(payload, "exp"),
            _str(payload, "jti"),
        )
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed token payload") from None
    return claims


def check_times(claims: TokenClaims, now: float) -> None:
    if now >= claims.exp:
        raise TokenError(f"token {claims.jti} of {claims.sub} expired")
    if claims.iat > now + CLOCK_SKEW:
        raise TokenError(f"token {claims.jti} of {claims.sub} is not valid yet")


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str) or not value:
        raise ValueError(key)
    return value


def _int(payload: dict[str, Any], key: str) -> int:
    value = payload[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(key)
    return value


def _strings(payload: dict[str, Any], key: str) -> list[str]:
    value = payload.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(key)
    return value


# The revocation list.


@dataclass(frozen=True, slots=True)
class Revoked:
    jti: str
    sub: str
    exp: int  # after this the token is dead anyway and the entry may be dropped
    at: int


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign_revocations(key: ec.EllipticCurvePrivateKey, entries: list[Revoked], now: float) -> bytes:
    """The file's bytes: entries in the order given, signed by the CA."""
    body = {
        "format": REVOCATIONS_FORMAT,
        "updated": int(now),
        "revoked": [{"jti": e.jti, "sub": e.sub, "exp": e.exp, "at": e.at} for e in entries],
    }
    sig = _b64e(_sign(key, _REVOCATION_PREFIX + _canonical(body)))
    return (json.dumps({"body": body, "sig": sig}, indent=1, sort_keys=True) + "\n").encode()


def read_revocations(path: Path, key: ec.EllipticCurvePublicKey | None) -> list[Revoked]:
    """The entries of a revocation list, after checking its signature (``key`` None: trust
    the file, for the CLI that holds the CA key and rewrites it). A missing file is empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PolicyError(f"{path}:1: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
        body, sig = doc["body"], doc["sig"]
        if not isinstance(body, dict) or not isinstance(sig, str):
            raise ValueError("body/sig")
        if body.get("format") != REVOCATIONS_FORMAT:
            raise ValueError(f"format is not {REVOCATIONS_FORMAT!r}")
        entries = [
            Revoked(_str(e, "jti"), _str(e, "sub"), _int(e, "exp"), _int(e, "at"))
            for e in body["revoked"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyError(f"{path}:1: not a token revocation list ({exc})") from None
    if key is not None:
        try:
            signature = _b64d(sig)
        except (binascii.Error, ValueError):
            signature = b""
        if not _verify(key, signature, _REVOCATION_PREFIX + _canonical(body)):
            raise PolicyError(f"{path}:1: bad signature: not signed by the CA (tampered?)")
    return entries
