"""The admin side of tokens, in a PKI directory: issue (and log), revoke, list.

Files, next to the CA::

    PKI_DIR/tokens.jsonl          one line per issued token: jti, sub, groups, iat, exp
                                  (never the token itself: a log cannot leak access)
    PKI_DIR/revoked-tokens.json   the signed revocation list the gateways read

Only this side needs the CA key; the gateways need ca.crt and revoked-tokens.json.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from hagate.pki.ca import PKIError, load_ca
from hagate.policy import tokens as tk
from hagate.policy.model import PolicyError

ISSUED_LOG = "tokens.jsonl"
_TTL_RE = re.compile(r"^(\d+)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` or seconds."""
    found = _TTL_RE.match(text.strip())
    if not found or int(found.group(1)) == 0:
        raise ValueError(f"not a time to live: {text!r} (e.g. 30d, 12h, 15m)")
    return float(int(found.group(1)) * _UNITS[found.group(2)])


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def issue(
    directory: Path, sub: str, groups: list[str], ttl: float, now: float
) -> tuple[str, tk.TokenClaims]:
    """A token signed with the CA key of ``directory``, logged in tokens.jsonl."""
    _cert, key = load_ca(directory)
    token, claims = tk.issue_token(key, sub, groups, now, ttl)
    entry = {
        "jti": claims.jti,
        "sub": claims.sub,
        "groups": sorted(claims.groups),
        "iat": claims.iat,
        "exp": claims.exp,
    }
    with (directory / ISSUED_LOG).open("a") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")
    return token, claims


def issued(directory: Path) -> list[tk.TokenClaims]:
    path = directory / ISSUED_LOG
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
            out.append(
                tk.TokenClaims(e["sub"], frozenset(e["groups"]), e["iat"], e["exp"], e["jti"])
            )
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line hides one token from `list`, nothing else
    return out


def revoke(directory: Path, jti: str | None, sub: str | None, now: float) -> list[tk.Revoked]:
    """Add tokens (one jti, or every token of ``sub``) to the signed list; return the new
    entries. Entries of tokens that have expired are dropped: they are refused anyway."""
    _cert, key = load_ca(directory)
    path = directory / tk.REVOCATIONS_FILE
    try:
        entries = tk.read_revocations(path, key.public_key())
    except PolicyError as exc:
        raise PKIError(str(exc)) from None
    known = {c.jti: c for c in issued(directory)}
    if jti is not None:
        targets = [known[jti]] if jti in known else []
        if not targets:
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", jti):
                raise PKIError(f"not a token id: {jti!r}")
            # Not issued from this directory (or the log was lost): revoke it for ten years.
            targets = [tk.TokenClaims("?", frozenset(), int(now), int(now) + 10 * 365 * 86400, jti)]
    else:
        targets = [c for c in known.values() if c.sub == sub and c.exp > now]
        if not targets:
            raise PKIError(f"no unexpired token of {sub!r} in {directory / ISSUED_LOG}")
    present = {e.jti for e in entries}
    added = [tk.Revoked(c.jti, c.sub, c.exp, int(now)) for c in targets if c.jti not in present]
    kept = [e for e in entries if e.exp > now]
    _write(path, tk.sign_revocations(key, kept + added, now))
    return added
