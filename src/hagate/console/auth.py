"""Who may use the console: the access policy's own identities, a role from its groups.

An operator logs in with a ``[passwords]`` entry of the policy file (argon2) or presents a user
certificate of the cluster CA (HTTPS with ``--client-ca``). Members of the ``operator`` group
may act (kick a session, revoke a token); members of the ``viewer`` group may only look;
anybody else is refused, so that a device user with a password cannot read the inventory.

Logins are rate-limited per client address and overall (each one costs an argon2 hash), and
at most two are checked at a time. A session is a random cookie (HttpOnly, SameSite=Strict)
with a CSRF token of its own that every state-changing request must carry in a header.
Pure apart from the argon2 check: ``now`` is passed in.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum

from hagate.net.tls import Identity
from hagate.policy import Policy, Principal

SESSION_IDLE = 1800.0  # s without a request
SESSION_MAX = 12 * 3600.0
MAX_SESSIONS = 1000
FAILURES_PER_ADDRESS = 5  # within FAILURE_WINDOW, then that address waits
FAILURE_WINDOW = 300.0
ATTEMPTS_PER_WINDOW = 30  # every address together, within ATTEMPT_WINDOW
ATTEMPT_WINDOW = 10.0


class Role(Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass
class ConsoleSession:
    sid: str
    csrf: str
    user: str  # the principal's label: password:bob, user:alice
    role: Role
    created: float
    used: float
    streams: int = 0  # live-update streams open

    def as_json(self) -> dict[str, object]:
        return {"user": self.user, "role": self.role.value, "csrf": self.csrf}


class LoginRefused(Exception):
    """A login that failed; ``status`` 401 (bad credentials), 403 (no role), 429 (slow down)."""

    def __init__(self, status: int, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class LoginLimiter:
    """Failures per address in a sliding window, and attempts overall."""

    failures: dict[str, deque[float]] = field(default_factory=dict)
    attempts: deque[float] = field(default_factory=deque)

    def check(self, address: str, now: float) -> None:
        while self.attempts and self.attempts[0] <= now - ATTEMPT_WINDOW:
            self.attempts.popleft()
        if len(self.attempts) >= ATTEMPTS_PER_WINDOW:
            wait = self.attempts[0] + ATTEMPT_WINDOW - now
            raise LoginRefused(429, "too many logins: try again shortly", wait)
        mine = self.failures.get(address)
        if mine is not None:
            while mine and mine[0] <= now - FAILURE_WINDOW:
                mine.popleft()
            if len(mine) >= FAILURES_PER_ADDRESS:
                wait = mine[0] + FAILURE_WINDOW - now
                raise LoginRefused(429, "too many failed logins from this address", wait)
        self.attempts.append(now)

    def failed(self, address: str, now: float) -> None:
        if len(self.failures) > 10_000:  # an address sweep: forget the quiet ones
            for key in [k for k, v in self.failures.items() if not v or v[-1] < now - 60]:
                del self.failures[key]
        self.failures.setdefault(address, deque()).append(now)

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)


class ConsoleAuth:
    """Logins, sessions and roles; thread-safe (the web server has a thread per request)."""

    def __init__(self, operator_group: str = "operator", viewer_group: str = "viewer") -> None:
        self.operator_group = operator_group
        self.viewer_group = viewer_group
        self.limiter = LoginLimiter()
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._by_cert: dict[str, str] = {}  # "user:alice#serial" -> its session id
        self._lock = threading.Lock()
        self._checking = threading.BoundedSemaphore(2)

    def role_of(self, principal: Principal) -> Role | None:
        if self.operator_group in principal.groups:
            return Role.OPERATOR
        if self.viewer_group in principal.groups:
            return Role.VIEWER
        return None

    def login_password(
        self, policy: Policy, user: str, password: str, address: str, now: float
    ) -> ConsoleSession:
        """A new session, or LoginRefused. Counts against ``address`` before the hash."""
        with self._lock:
            self.limiter.check(address, now)
        if not user or len(user) > 64 or len(password) > 1024 or ":" in user:
            with self._lock:
                self.limiter.failed(address, now)
            raise LoginRefused(401, "wrong user name or password")
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if not self._checking.acquire(timeout=5):
            raise LoginRefused(429, "the console is busy checking logins", 1.0)
        try:
            found = policy.authenticate(header, None, now)
        finally:
            self._checking.release()
        if not isinstance(found, Principal) or found.name != user:
            with self._lock:
                self.limiter.failed(address, now)
            raise LoginRefused(401, "wrong user name or password")
        return self._admit(found, address, now)

    def login_certificate(
        self, policy: Policy, cert: Identity, address: str, now: float
    ) -> ConsoleSession:
        found = policy.authenticate(None, cert, now)
        if not isinstance(found, Principal) or found.kind.value != "user":
            raise LoginRefused(403, "only a user certificate can log in")
        # One session per certificate: a client that keeps no cookies (curl) must not open a
        # session per request and push everybody else's out of the table.
        key = f"{found.label()}#{cert.serial}"
        with self._lock:
            sid = self._by_cert.get(key)
        if sid is not None:
            session = self.session(sid, now)
            if session is not None and self.role_of(found) is session.role:
                return session
        session = self._admit(found, address, now)
        with self._lock:
            self._by_cert[key] = session.sid
            if len(self._by_cert) > MAX_SESSIONS:
                for k in [k for k, v in self._by_cert.items() if v not in self._sessions]:
                    del self._by_cert[k]
        return session

    def _admit(self, principal: Principal, address: str, now: float) -> ConsoleSession:
        role = self.role_of(principal)
        if role is None:
            raise LoginRefused(
                403,
                f"{principal.label()} is in neither the {self.operator_group!r} nor the "
                f"{self.viewer_group!r} group of the policy",
            )
        session = ConsoleSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), principal.label(), role, now, now
        )
        with self._lock:
            self.limiter.succeeded(address)
            self._sessions[session.sid] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def session(self, sid: str | None, now: float) -> ConsoleSession | None:
        """The live session of cookie value ``sid`` (touched), or None."""
        if not sid:
            return None
        with self._lock:
            found = self._sessions.get(sid)
            if found is None:
                return None
            if now - found.used > SESSION_IDLE or now - found.created > SESSION_MAX:
                del self._sessions[sid]
                return None
            found.used = now
            self._sessions.move_to_end(sid)
            return found

    def alive(self, session: ConsoleSession, now: float) -> bool:
        """Still valid (not logged out, not expired), without touching it."""
        with self._lock:
            if self._sessions.get(session.sid) is not session:
                return False
            return now - session.created <= SESSION_MAX

    def logout(self, session: ConsoleSession) -> None:
        with self._lock:
            self._sessions.pop(session.sid, None)

    @staticmethod
    def csrf_ok(session: ConsoleSession, token: str | None) -> bool:
        return token is not None and secrets.compare_digest(session.csrf, token)
