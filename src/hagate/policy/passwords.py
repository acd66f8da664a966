"""HTTP basic-auth passwords: argon2 hashes only (argon2-cffi), never plaintext.

Verifying costs what the hash's own parameters say (~30-50 ms with the library's defaults):
`Policy` caches successful and failed checks so that a keep-alive connection pays it once.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = argon2.PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) defaults
_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")


def hash_password(password: str) -> str:
    """An argon2id hash for the ``[passwords]`` table."""
    return _HASHER.hash(password)


def check_hash(value: str) -> str | None:
    """Why ``value`` is not an argon2 hash (None when it is one)."""
    if not value.startswith(_PREFIXES):
        return (
            "not an argon2 hash (plaintext is refused; make one with 'hagate token hash-password')"
        )
    try:
        argon2.extract_parameters(value)
    except InvalidHashError:
        return "a malformed argon2 hash"
    return None


def verify_password(hashed: str, password: str) -> bool:
    """The slow check; the only place argon2 runs on the gateway."""
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
