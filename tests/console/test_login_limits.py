"""Console login limits are per client address and per user name, never one limit every
client shares: an attacker guessing from many addresses, at one name or at many, delays only
what it hammers; another operator logs in at once, and so does the hammered name from the
address it logged in from before. Every table is bounded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from tests.console.kit import PASSWORDS, _hashes

from hagate.console.auth import (
    FAILURE_WINDOW,
    FAILURES_PER_ADDRESS,
    FAILURES_PER_NAME,
    MAX_KNOWN,
    SESSIONS_PER_USER,
    ConsoleAuth,
    FailureTable,
    LoginLimiter,
    LoginRefused,
    address_key,
)
from hagate.policy import Policy, Principal, load_policy

OPS = PASSWORDS["ops"]
VIV = PASSWORDS["viv"]


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path: Path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(
        '[groups]\noperator = ["password:ops"]\nviewer = ["password:viv"]\n\n'
        f"[passwords]\n{_hashes()}\n"
    )
    return load_policy(path)


def _fail(auth: ConsoleAuth, policy: Policy, user: str, address: str, now: float) -> int:
    try:
        auth.login_password(policy, user, "a guess", address, now)
    except LoginRefused as exc:
        return exc.status
    raise AssertionError("a guess logged in")


def test_many_addresses_hammering_one_name_do_not_lock_out_another_operator(
    policy: Policy,
) -> None:
    """Today's main refuses everybody once 30 attempts came in 10 s, from wherever."""
    auth = ConsoleAuth()
    now = 1000.0
    auth.login_password(policy, "ops", OPS, "192.0.2.200", now)  # ops' own desk, before
    statuses = [_fail(auth, policy, "ops", f"198.51.100.{i}", now + i * 0.01) for i in range(60)]
    assert statuses[:FAILURES_PER_NAME] == [401] * FAILURES_PER_NAME
    assert set(statuses[FAILURES_PER_NAME:]) == {429}  # the name waits now, from new addresses
    t = now + 1
    assert auth.login_password(policy, "viv", VIV, "192.0.2.7", t).user == "password:viv"
    with pytest.raises(LoginRefused, match="for this user name") as info:
        auth.login_password(policy, "ops", OPS, "192.0.2.8", t)  # a new address: waits
    assert info.value.status == 429 and 0 < info.value.retry_after <= FAILURE_WINDOW
    assert auth.login_password(policy, "ops", OPS, "192.0.2.200", t).user == "password:ops"
    # the window passes: the name is free again
    later = now + FAILURE_WINDOW + 1
    assert auth.login_password(policy, "ops", OPS, "192.0.2.8", later).user == "password:ops"


def test_one_address_hammering_many_names_waits_alone(policy: Policy) -> None:
    auth = ConsoleAuth()
    now = 50.0
    bad = "203.0.113.9"
    for i in range(FAILURES_PER_ADDRESS):
        assert _fail(auth, policy, f"user{i}", bad, now) == 401
    with pytest.raises(LoginRefused, match="from this address"):
        auth.login_password(policy, "ops", OPS, bad, now)  # even the right password waits
    assert auth.login_password(policy, "ops", OPS, "203.0.113.10", now).role.value == "operator"


def test_an_ipv6_host_counts_as_its_slash_64(policy: Policy) -> None:
    auth = ConsoleAuth()
    for i in range(FAILURES_PER_ADDRESS):
        assert _fail(auth, policy, "x", f"2001:db8:1:2::{i + 1:x}", 0.0) == 401
    with pytest.raises(LoginRefused, match="from this address"):
        auth.login_password(policy, "viv", VIV, "2001:db8:1:2:ffff::1", 0.0)
    assert auth.login_password(policy, "viv", VIV, "2001:db8:1:3::1", 0.0).user == "password:viv"


def test_address_keys() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8::1") == "2001:db8::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("not an address" * 10) == ("not an address" * 10)[:64]


def test_failure_table_is_bounded_and_slides() -> None:
    table = FailureTable(limit=3, window=10.0, capacity=100)
    for i in range(1000):
        table.add(f"k{i}", float(i))
    assert len(table) == 100 and table.wait("k0", 1000.0) == 0.0  # the least recent went
    for t in (0.0, 1.0, 2.0):
        table.add("a", t)
    assert table.wait("a", 2.0) == 8.0  # the oldest of the last three leaves at 10
    assert table.wait("a", 10.0) == 0.0  # it left: two in the window now
    table.add("a", 10.0)
    assert table.wait("a", 10.5) == 0.5
    table.clear("a")
    assert table.wait("a", 10.5) == 0.0


def test_limiter_tables_stay_bounded_under_a_sweep() -> None:
    lim = LoginLimiter()
    for i in range(30_000):
        lim.failed(f"name{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", float(i))
    assert len(lim.by_address) <= 10_000 and len(lim.by_name) <= 10_000
    for i in range(MAX_KNOWN + 500):
        lim.succeeded(f"u{i}", "192.0.2.1")
    assert len(lim.known) == MAX_KNOWN
    assert ("u0", "192.0.2.1") not in lim.known
    assert (f"u{MAX_KNOWN + 499}", "192.0.2.1") in lim.known


def test_a_success_forgets_the_address_failures_not_the_names() -> None:
    lim = LoginLimiter()
    for _ in range(FAILURES_PER_NAME):
        lim.failed("ops", "192.0.2.1", 0.0)
    lim.succeeded("ops", "192.0.2.1")
    lim.check("ops", "192.0.2.1", 1.0)  # known pair, address cleared: let in
    with pytest.raises(LoginRefused, match="for this user name"):
        lim.check("ops", "192.0.2.2", 1.0)


def test_one_user_logging_in_in_a_loop_ends_only_its_own_sessions(policy: Policy) -> None:
    """The session table is bounded (MAX_SESSIONS, least recently used out): without a per-user
    bound, a viewer's login loop would push every operator out of it."""
    auth = ConsoleAuth()
    ops = auth.login_password(policy, "ops", OPS, "192.0.2.1", 0.0)
    viv = auth.login_password(policy, "viv", VIV, "192.0.2.2", 0.0)
    found = load_principal(policy, "viv", VIV)
    sessions = [auth._admit(found, "192.0.2.2", 1.0 + i) for i in range(3 * SESSIONS_PER_USER)]
    assert auth.session(ops.sid, 2.0) is ops  # the operator's session is untouched
    live = [s for s in sessions if auth.session(s.sid, 2.0) is not None]
    assert live == sessions[-SESSIONS_PER_USER:]  # the viewer keeps its newest ones
    assert auth.session(viv.sid, 2.0) is None


def load_principal(policy: Policy, user: str, password: str) -> Principal:
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    found = policy.authenticate(header, None, 0.0)
    assert isinstance(found, Principal)
    return found
