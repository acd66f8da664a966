"""Revocation and policy reloads: watch the files both nodes share, apply changes within 1 s.

The CRL (certificates), the policy file and the token revocation list are polled every
``POLL_S``. A change that loads is applied at once and totally: sessions of revoked devices
are closed, and every running user stream is checked again against the new state (revoked
certificate or token, device revoked, or no longer allowed by the policy) and cut if it fails.
A change that does not load is logged and the old state kept: a bad edit locks nobody out and
lets nobody in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hagate.gateway.streams import Lease
from hagate.pki.ca import PKIError, load_revoked
from hagate.policy import Policy, PolicyError, PrincipalKind, empty_policy, load_policy

if TYPE_CHECKING:
    from hagate.gateway.server import Gateway

log = logging.getLogger("hagate.gateway")

POLL_S = 0.5
T = TypeVar("T")


class FileWatch:
    """Reloads one file when its (mtime, size, inode) changes; keeps the last good value."""

    def __init__(self, paths: list[Path], load: Callable[[], T], what: str) -> None:
        self.paths = paths
        self.load = load
        self.what = what
        self.stamp: tuple[object, ...] | None = None

    def current(self) -> tuple[object, ...]:
        out: list[object] = []
        for p in self.paths:
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def poll(self, initial: bool = False) -> object | None:
        """The newly loaded value, or None if unchanged or not loadable (initial: raise)."""
        stamp = self.current()
        if stamp == self.stamp:
            return None
        try:
            value = self.load()
        except (PKIError, PolicyError, OSError, ValueError) as exc:
            if initial:
                raise ValueError(f"{self.what}: {exc}") from None
            if self.stamp != stamp:
                log.error("keeping the old %s: %s", self.what, exc)
            self.stamp = stamp  # one error line per change, not one per poll
            return None
        self.stamp = stamp
        return value


class Revocation:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        cfg = gw.cfg
        self.watches: list[tuple[FileWatch, Callable[[object], None]]] = []
        if cfg.crl is not None:
            crl, ca = cfg.crl, cfg.ca
            self.watches.append(
                (FileWatch([crl], lambda: load_revoked(crl, ca), f"CRL {crl}"), self._crl)
            )
        self.policy_watch: FileWatch | None = None
        if cfg.policy is not None:
            files = [cfg.policy] + ([cfg.token_revocations] if cfg.token_revocations else [])
            self.policy_watch = FileWatch(files, self._load_policy, "policy")
            self.watches.append((self.policy_watch, self._policy))

    def _load_policy(self) -> Policy:
        cfg = self.gw.cfg
        if cfg.policy is None:
            return empty_policy()
        return load_policy(cfg.policy, ca_cert=cfg.ca, token_revocations=cfg.token_revocations)

    def initial(self) -> None:
        for watch, apply in self.watches:
            value = watch.poll(initial=True)
            if value is not None:
                apply(value)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            self.poll()

    def poll(self) -> None:
        for watch, apply in self.watches:
            value = watch.poll()
            if value is not None:
                apply(value)

    def _crl(self, value: object) -> None:
        assert isinstance(value, frozenset)
        gw = self.gw
        gw.revoked = value
        for session in list(gw.sessions.values()):
            if session.identity.serial in value:
                log.warning("device %s: certificate revoked, closing its session", session.device)
                gw.end_session(session, error="certificate revoked")
        self.recheck("CRL changed")

    def _policy(self, value: object) -> None:
        assert isinstance(value, Policy)
        gw = self.gw
        gw.policy = value
        if self.policy_watch is not None and value.files:
            # Watch every file the policy was read from ([tokens] paths included).
            self.policy_watch.paths = list(value.files)
            self.policy_watch.stamp = self.policy_watch.current()
        log.info("policy loaded from %s", value.source)
        gw.tcp.sync()
        self.recheck("policy changed")

    def recheck(self, why: str) -> None:
        """Cut every running stream that the current CRL, tokens and policy no longer allow."""
        n = self.gw.streams.cut_where(self.verdict)
        if n:
            log.warning("%s: cut %d stream(s) no longer allowed", why, n)

    def verdict(self, lease: Lease) -> str | None:
        gw = self.gw
        p = lease.principal
        if p.serial is not None and p.serial in gw.revoked:
            return f"certificate of {p.label()} revoked"
        if p.kind is PrincipalKind.TOKEN and p.token_id in gw.policy.revoked_tokens():
            return f"token of {p.name} revoked"
        if p.expires is not None and time.time() >= p.expires:
            return f"token of {p.name} expired"
        session = gw.sessions.get(lease.device)
        if session is not None and session.identity.serial in gw.revoked:
            return f"device {lease.device} revoked"
        decision = gw.policy.decide(p, lease.device, lease.service, lease.route, lease.client_ip)
        if not decision.allowed:
            return f"{p.label()} no longer allowed ({decision.rule})"
        return None
