"""`Policy`: authenticate a request's credentials and decide, fast enough for every request.

Both answers are cached: a Basic header is verified with argon2 once (~40 ms) and then found
by the SHA-256 of the header (never the plaintext) for a short TTL; a token's signature is
checked once and its expiry on every use; decisions are memoised per (principal, target,
address). A `Policy` never changes: a reload builds a new one, with fresh caches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from hagate.net.tls import Identity
from hagate.pki.ca import Role
from hagate.policy import decide as rules
from hagate.policy import passwords as pw
from hagate.policy import tokens as tk
from hagate.policy.cache import LRU
from hagate.policy.model import (
    ANONYMOUS,
    AuthFailure,
    Decision,
    PolicyData,
    PolicyError,
    Principal,
    PrincipalKind,
    RouteKind,
)

PASSWORD_TTL = 60.0  # seconds a verified Basic header is trusted without argon2
FAILURE_TTL = 10.0  # a wrong header is refused again without argon2 for this long
TOKEN_TTL = 300.0  # a token's signature is trusted this long (expiry is checked every time)
AUTH_CACHE = 4096
DECISION_CACHE = 65536

_Result = Principal | AuthFailure


class Policy:
    """A loaded policy: who may reach which device/service by which route."""

    def __init__(
        self,
        data: PolicyData,
        token_key: ec.EllipticCurvePublicKey | None = None,
        revoked: frozenset[str] = frozenset(),
        files: tuple[Path, ...] = (),
    ) -> None:
        self.data = data
        self.source = data.source
        self.files = files  # every file this policy was read from: watch them all for reloads
        self._key = token_key
        self._revoked = revoked
        self._auth: LRU[bytes, tuple[_Result, float]] = LRU(AUTH_CACHE)
        self._certs: LRU[Identity, _Result] = LRU(AUTH_CACHE)
        self._groups: LRU[tuple[PrincipalKind, str], frozenset[str]] = LRU(AUTH_CACHE)
        self._decisions: LRU[tuple[Principal, str, str, RouteKind, str], Decision] = LRU(
            DECISION_CACHE
        )
        self._challenge = rules.challenge(data, rules.all_schemes(data))
        self._dummy = next(iter(data.passwords.values()), None)

    # Authentication.

    def authenticate(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure:
        """Who sent this request. A verified client certificate wins over the header; no
        credential of ours is ANONYMOUS; a bad one is an AuthFailure (401 with challenge)."""
        found = self.authenticate_cached(authorization, cert, now)
        if found is not None:
            return found
        assert authorization is not None
        return self._basic(authorization, now)

    def authenticate_cached(
        self, authorization: str | None, cert: Identity | None, now: float
    ) -> Principal | AuthFailure | None:
        """`authenticate` without the slow path: None means a password must be checked with
        argon2 (tens of ms): call `authenticate`, from a worker thread if the caller has an
        event loop to keep running."""
        if cert is not None:
            return self._certificate(cert)
        if not authorization:
            return ANONYMOUS
        key = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
        hit = self._auth.get(key, now)
        if hit is not None:
            result, expires = hit
            if now < expires:
                return result
            return AuthFailure(401, f"{_label(result)}: token expired", self._bearer_error())
        scheme, _, rest = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and rest.strip().startswith(tk.PREFIX):
            return self._token(key, rest.strip(), now)
        if scheme == "basic" and self.data.passwords:
            return None
        return ANONYMOUS

    def is_gateway_credential(self, authorization: str | None) -> bool:
        """Whether the header is for the gateway (so it must not be forwarded to the device:
        a device would learn a password or token it could replay elsewhere). Basic is ours
        when the policy has ``[passwords]``; Bearer when it is an ``hgt1.`` token."""
        if not authorization:
            return False
        scheme, _, rest = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return rest.strip().startswith(tk.PREFIX)
        return scheme == "basic" and bool(self.data.passwords)

    def _certificate(self, cert: Identity) -> Principal | AuthFailure:
        found = self._certs.get(cert)
        if found is None:
            if cert.role is Role.USER:
                groups = self.groups_of(PrincipalKind.USER, cert.name)
                found = Principal(PrincipalKind.USER, cert.name, groups, serial=cert.serial)
            elif cert.role is Role.DEVICE:
                found = Principal(PrincipalKind.DEVICE, cert.name, serial=cert.serial)
            else:
                found = AuthFailure(403, f"a {cert.role.value} certificate is not a client", None)
            self._certs.put(cert, found)
        return found

    def _basic(self, authorization: str, now: float) -> Principal | AuthFailure:
        key = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
        result: Principal | AuthFailure
        try:
            raw = base64.b64decode(authorization.strip().partition(" ")[2].strip(), validate=True)
            name, sep, password = raw.decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            name, sep, password = "", "", ""
        if not sep:
            result = AuthFailure(401, "malformed Basic credentials", self._challenge)
        else:
            hashed = self.data.passwords.get(name)
            if hashed is None:
                # As slow as a wrong password, so that timing does not tell names apart.
                if self._dummy is not None:
                    pw.verify_password(self._dummy, password)
                result = AuthFailure(401, f"password:{name}: unknown user", self._challenge)
            elif pw.verify_password(hashed, password):
                groups = self.groups_of(PrincipalKind.PASSWORD, name)
                result = Principal(PrincipalKind.PASSWORD, name, groups)
            else:
                result = AuthFailure(401, f"password:{name}: wrong password", self._challenge)
        ttl = PASSWORD_TTL if isinstance(result, Principal) else FAILURE_TTL
        self._auth.put(key, (result, float("inf")), now, ttl)
        return result

    def _token(self, key: bytes, token: str, now: float) -> Principal | AuthFailure:
        if self._key is None:
            return AuthFailure(401, "tokens are not enabled on this gateway", self._challenge)
        try:
            claims = tk.verify_signature(self._key, token)
            tk.check_times(claims, now)
        except tk.TokenError as exc:
            failure = AuthFailure(401, str(exc), self._bearer_error())
            self._auth.put(key, (failure, float("inf")), now, FAILURE_TTL)
            return failure
        if claims.jti in self._revoked:
            failure = AuthFailure(
                401, f"token {claims.jti} of {claims.sub} is revoked", self._bearer_error()
            )
            self._auth.put(key, (failure, float("inf")), now, TOKEN_TTL)
            return failure
        groups = claims.groups | self.groups_of(PrincipalKind.TOKEN, claims.sub)
        principal = Principal(
            PrincipalKind.TOKEN,
            claims.sub,
            groups,
            token_id=claims.jti,
            expires=claims.exp,
            claims=claims.groups,
        )
        self._auth.put(key, (principal, float(claims.exp)), now, TOKEN_TTL)
        return principal

    def _bearer_error(self) -> str:
        bearer = f'Bearer realm="{self.data.realm}", error="invalid_token"'
        if self.data.passwords:
            return f'Basic realm="{self.data.realm}", {bearer}'
        return bearer

    def groups_of(self, kind: PrincipalKind, name: str) -> frozenset[str]:
        """The policy's groups that list this principal (by name or glob)."""
        found = self._groups.get((kind, name))
        if found is None:
            probe = Principal(kind, name)
            found = frozenset(
                group
                for group, members in self.data.groups.items()
                if any(rules.who_matches(m, probe) for m in members)
            )
            self._groups.put((kind, name), found)
        return found

    # Decisions.

    def decide(
        self, principal: Principal, device: str, service: str, route: RouteKind, client_ip: str
    ) -> Decision:
        """May ``principal`` reach ``device``/``service`` by ``route`` from ``client_ip``?

        Group membership is taken from *this* policy (plus a token's signed claims), not from
        ``principal.groups``: a principal kept from before a reload (a running stream being
        re-checked) is judged by the groups of the new file, and a principal the caller built
        from a certificate without groups is judged right."""
        key = (principal, device, service, route, client_ip)
        found = self._decisions.get(key)
        if found is None:
            if (
                principal.kind is PrincipalKind.PASSWORD
                and principal.name not in self.data.passwords
            ):
                # Deleting a [passwords] entry revokes it: streams re-checked after the reload
                # are cut (new requests fail in authenticate already).
                why = f"{principal.label()} is no longer in [passwords]"
                found = Decision(False, "default deny", 403, why)
            else:
                current = self._current(principal)
                found = rules.decide(self.data, current, device, service, route, client_ip)
            self._decisions.put(key, found)
        return found

    def _current(self, principal: Principal) -> Principal:
        kind = principal.kind
        if kind is PrincipalKind.DEVICE or kind is PrincipalKind.ANONYMOUS:
            return principal
        groups = self.groups_of(kind, principal.name) | principal.claims
        if groups == principal.groups:
            return principal
        return replace(principal, groups=groups)

    def tcp_public(self, device: str, service: str) -> bool:
        """Whether some public rule opens this raw TCP route (perhaps only from some
        addresses): otherwise the port is not to be listened on at all."""
        return any(
            r.public and r.matches_target(device, service, RouteKind.TCP) for r in self.data.rules
        )

    def revoked_tokens(self) -> frozenset[str]:
        return self._revoked

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.data.warnings

    @property
    def tokens_enabled(self) -> bool:
        return self._key is not None

    def principal(self, label: str) -> Principal:
        """``user:alice``, ``password:bob``, ``token:carol``, ``device:dev1`` or
        ``anonymous`` as the gateway would see it (groups from the policy file only)."""
        if label == "anonymous":
            return ANONYMOUS
        kind_text, sep, name = label.partition(":")
        kinds = {k.value: k for k in PrincipalKind if k is not PrincipalKind.ANONYMOUS}
        if not sep or kind_text not in kinds or not name:
            raise PolicyError(
                f"{label!r}: not a principal (user:NAME, password:NAME, token:NAME, "
                "device:NAME or anonymous)"
            )
        kind = kinds[kind_text]
        groups = frozenset() if kind is PrincipalKind.DEVICE else self.groups_of(kind, name)
        return Principal(kind, name, groups)

    def explain(
        self,
        principal_label: str,
        device: str,
        service: str,
        route: RouteKind,
        client_ip: str = rules.ANY_ADDRESS,
    ) -> Decision:
        """The decision for a principal named by its label, for the CLI."""
        principal = self.principal(principal_label)
        return rules.decide(self.data, principal, device, service, route, client_ip)


def _label(result: Principal | AuthFailure) -> str:
    return result.label() if isinstance(result, Principal) else "credentials"


def empty_policy() -> Policy:
    """Deny everything: what a gateway without a policy runs."""
    return Policy(PolicyData(source="<empty>"))


def load_policy(
    path: Path, *, ca_cert: Path | None = None, token_revocations: Path | None = None
) -> Policy:
    """Read and check a policy file (and the token CA and revocation list, if any);
    PolicyError ``FILE:LINE: why`` for anything wrong."""
    from hagate.policy.load import parse_policy

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}:1: cannot read: {exc}") from None
    data, files = parse_policy(text, path)
    ca = ca_cert or files.ca
    revocations = token_revocations or files.revocations
    if revocations is not None and ca is None:
        raise PolicyError(f"{path}:1: tokens: a revocation list needs the CA certificate (ca)")
    key = tk.ca_public_key(ca) if ca is not None else None
    revoked: frozenset[str] = frozenset()
    if revocations is not None:
        revoked = frozenset(e.jti for e in tk.read_revocations(revocations, key))
    warnings = list(data.warnings)
    named = [w for r in data.rules for w in r.who] + [m for g in data.groups.values() for m in g]
    if key is None and any(w.kind is PrincipalKind.TOKEN for w in named):
        warnings.append(
            f"{path}:1: tokens: token: principals are named but no CA certificate is given "
            "([tokens] ca or --ca): every token is refused"
        )
    data = replace(data, tokens=key is not None, warnings=tuple(warnings))
    read = tuple(f for f in (path, ca, revocations) if f is not None)
    return Policy(data, key, revoked, read)
