"""Who may use the console: the access policy's own identities, a role from its groups.

An operator logs in with a ``[passwords]`` entry of the policy file (argon2) or presents a user
certificate of the cluster CA (HTTPS with ``--client-ca``). Members of the ``operator`` group
may act (kick a session, revoke a token); members of the ``viewer`` group may only look;
anybody else is refused, so that a device user with a password cannot read the inventory.

Failed logins are limited per client address (an IPv6 one by its /64) and per user name, in
bounded tables, with no limit shared by everybody: an attacker guessing from one address, or
at one name from many, delays that address or that name, never another operator (and not even
the hammered name's own operator from an address it logged in from before). Each check costs
an argon2 hash: at most two run at a time, one per client address. A session is a random
cookie (HttpOnly, SameSite=Strict) with a CSRF token of its own that every state-changing
request must carry in a header; one user holds at most ``SESSIONS_PER_USER`` (a script that
logs in in a loop ends its own oldest sessions, never another operator's).
Pure apart from the argon2 check: ``now`` is passed in.
"""

from __future__ import annotations

import base64
import ipaddress
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
SESSIONS_PER_USER = 16  # then that user's oldest goes: one login loop cannot evict the others
FAILURES_PER_ADDRESS = 5  # within FAILURE_WINDOW, then that address waits
FAILURES_PER_NAME = 10  # within FAILURE_WINDOW, from every address together, then that name waits
FAILURE_WINDOW = 300.0
MAX_TRACKED = 10_000  # addresses, and names, whose failures are remembered (least recent go)
MAX_KNOWN = 10_000  # (name, address) pairs that logged in: exempt from that name's limit


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


def address_key(address: str) -> str:
    """The unit an address limit counts: an IPv4 address, an IPv6 address's /64 (one host
    commonly holds a whole /64), an IPv4-mapped IPv6 address as its IPv4 one."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureTable:
    """The last ``limit`` failures of each key in a sliding ``window``; at most ``capacity``
    keys, the one failed least recently forgotten first (memory is bounded whoever asks)."""

    def __init__(self, limit: int, window: float, capacity: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self._keys: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        times = self._keys.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._keys[key]
            return 0.0
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def add(self, key: str, now: float) -> None:
        times = self._keys.get(key)
        if times is None:
            times = self._keys[key] = deque(maxlen=self.limit)
        times.append(now)
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class LoginLimiter:
    """Failures per client address and per user name; no limit shared by every client.

    A (name, address) pair that logged in before (bounded, least recent forgotten) is exempt
    from the name's limit: an attacker hammering ``ops`` from elsewhere does not keep ``ops``
    out of the desk it always logs in from.
    """

    by_address: FailureTable = field(
        default_factory=lambda: FailureTable(FAILURES_PER_ADDRESS, FAILURE_WINDOW)
    )
    by_name: FailureTable = field(
        default_factory=lambda: FailureTable(FAILURES_PER_NAME, FAILURE_WINDOW)
    )
    known: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)

    def check(self, user: str, address: str, now: float) -> None:
        """LoginRefused (429) when this address, or this name, has to wait."""
        where = address_key(address)
        wait = self.by_address.wait(where, now)
        if wait > 0:
            raise LoginRefused(429, "too many failed logins from this address", wait)
        name = user[:64]
        if (name, where) not in self.known:
            wait = self.by_name.wait(name, now)
            if wait > 0:
                raise LoginRefused(429, "too many failed logins for this user name", wait)

    def failed(self, user: str, address: str, now: float) -> None:
        self.by_address.add(address_key(address), now)
        self.by_name.add(user[:64], now)

    def succeeded(self, user: str, address: str) -> None:
        """The address's failures are forgotten; the name's are not (they may be an attacker's
        elsewhere), but this pair is known from now on."""
        where = address_key(address)
        self.by_address.clear(where)
        self.known[(user[:64], where)] = None
        self.known.move_to_end((user[:64], where))
        while len(self.known) > MAX_KNOWN:
            self.known.popitem(last=False)


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
        self._checking_from: set[str] = set()  # address keys with a hash running

    def role_of(self, principal: Principal) -> Role | None:
        if self.operator_group in principal.groups:
            return Role.OPERATOR
        if self.viewer_group in principal.groups:
            return Role.VIEWER
        return None

    def login_password(
        self, policy: Policy, user: str, password: str, address: str, now: float
    ) -> ConsoleSession:
        """A new session, or LoginRefused. The address's and the name's failures are looked
        at before the hash; one address has at most one hash running."""
        with self._lock:
            self.limiter.check(user, address, now)
        if not user or len(user) > 64 or len(password) > 1024 or ":" in user:
            with self._lock:
                self.limiter.failed(user, address, now)
            raise LoginRefused(401, "wrong user name or password")
        where = address_key(address)
        with self._lock:
            if where in self._checking_from:
                raise LoginRefused(429, "a login from this address is being checked", 1.0)
            self._checking_from.add(where)
        try:
            header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if not self._checking.acquire(timeout=5):
                raise LoginRefused(429, "the console is busy checking logins", 1.0)
            try:
                found = policy.authenticate(header, None, now)
            finally:
                self._checking.release()
        finally:
            with self._lock:
                self._checking_from.discard(where)
        if not isinstance(found, Principal) or found.name != user:
            with self._lock:
                self.limiter.failed(user, address, now)
            raise LoginRefused(401, "wrong user name or password")
        return self._admit(found, address, now, user)

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

    def _admit(
        self, principal: Principal, address: str, now: float, user: str | None = None
    ) -> ConsoleSession:
        """``user``: the name a password login gave (its pair is known from now on)."""
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
            if user is not None:
                self.limiter.succeeded(user, address)
            else:
                self.limiter.by_address.clear(address_key(address))
            self._sessions[session.sid] = session
            mine = [k for k, v in self._sessions.items() if v.user == session.user]
            for sid in mine[: max(0, len(mine) - SESSIONS_PER_USER)]:
                del self._sessions[sid]  # least recently used first (the table's order)
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
