"""Kick with a ban: the table (bounded duration and size, expiry on the loop's clock), the
admin API (``ban`` in the body or ``?ban=``, ``unban``, shown in /api/summary, /api/devices
and /api/bans), the agent refused at its hello until the ban lapses, and the console's ban on
every node (operators only, audited). All on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.console.kit import Stack, stack, wait_for

from hagate.gateway.bans import MAX_BAN_S, RETRY_MAX_S, DeviceBans


def test_a_ban_lasts_its_duration_and_then_lapses() -> None:
    bans = DeviceBans()
    ban = bans.ban("dev1", 60, "password:ops", now=100.0)
    assert ban.until == 160.0
    assert bans.remaining("dev1", 100.0) == 60.0
    assert bans.remaining("dev2", 100.0) == 0.0
    assert bans.get("dev1", 159.9) is ban
    assert bans.remaining("dev1", 160.0) == 0.0
    assert len(bans) == 0  # dropped when met expired


def test_the_hint_is_the_rest_of_the_ban_at_most_a_minute() -> None:
    bans = DeviceBans()
    bans.ban("dev1", 3600, "x", now=0.0)
    bans.ban("dev2", 10, "x", now=0.0)
    assert bans.refusal_ms("dev1", 0.0) == RETRY_MAX_S * 1000 + 1
    assert bans.refusal_ms("dev2", 4.0) == 6001
    assert bans.refusal_ms("dev2", 10.0) == 0 and bans.refusal_ms("dev3", 0.0) == 0


def test_a_new_ban_replaces_the_old_and_lift_ends_it() -> None:
    bans = DeviceBans()
    bans.ban("dev1", 600, "a", now=0.0)
    bans.ban("dev1", 10, "b", now=5.0)
    assert bans.remaining("dev1", 5.0) == 10.0
    assert bans.lift("dev1") and not bans.lift("dev1")
    assert bans.remaining("dev1", 6.0) == 0.0


@pytest.mark.parametrize("seconds", [0, -1, MAX_BAN_S + 1, float("inf"), float("nan")])
def test_a_ban_is_bounded(seconds: float) -> None:
    with pytest.raises(ValueError, match=f"1..{MAX_BAN_S} seconds"):
        DeviceBans().ban("dev1", seconds, "x", now=0.0)


def test_the_table_is_bounded_the_soonest_to_end_go_first() -> None:
    bans = DeviceBans(limit=3)
    for i, seconds in enumerate((50, 10, 30)):
        bans.ban(f"dev{i}", seconds, "x", now=0.0)
    bans.ban("dev9", 40, "x", now=1.0)
    assert len(bans) == 3 and bans.remaining("dev1", 1.0) == 0.0  # the 10 s one went
    assert [b.device for b in bans.expire(1.0)] == ["dev2", "dev9", "dev0"]
    assert [b.device for b in bans.expire(35.0)] == ["dev9", "dev0"]


def test_json_says_who_and_how_long() -> None:
    ban = DeviceBans().ban("dev1", 90, "password:ops", now=10.0)
    assert ban.as_json(now=40.0, wall=1000.0) == {
        "device": "dev1",
        "by": "password:ops",
        "left_s": 60.0,
        "until": 1060.0,
    }


# -- the admin API and the console, on a real gateway ----------------------------------------

KICK = "/api/devices/dev1/kick"


@pytest.fixture
def st(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path, token=True) as s:
        yield s


def _post(st: Stack, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    status, _, data = st.request("POST", path, body, st.bearer(), port=st.admin()[1])
    return status, data


def _get(st: Stack, path: str) -> dict[str, object]:
    status, _, data = st.request("GET", path, headers=st.bearer(), port=st.admin()[1])
    assert status == 200, data
    return data  # type: ignore[no-any-return]


def test_a_kick_with_a_ban_keeps_the_agent_out_until_it_lapses(st: Stack) -> None:
    st.start_agent("dev1")
    agent = st.agent_objs["dev1"]
    assert _get(st, "/api/summary")["online"] == 1  # the book has seen it (the console polls)
    status, data = _post(st, KICK, {"by": "password:ops", "ban": 2})
    assert status == 200 and data["kicked"] is True, data
    ban = data["banned"]
    assert isinstance(ban, dict) and ban["by"] == "password:ops" and 1.5 < ban["left_s"] <= 2
    # the agent's redial is refused at its hello, with the ban's remainder as the hint
    wait_for(lambda: "by an operator" in agent.last_error, 5, "the agent told it is banned")
    assert st.gateway.metrics.auth_failures["banned"] >= 1
    assert "dev1" not in st.gateway.sessions
    summary = _get(st, "/api/summary")
    assert summary["banned"] == 1 and summary["online"] == 0
    row = _get(st, "/api/devices")["devices"][0]  # type: ignore[index]
    assert row["name"] == "dev1" and row["banned"]["by"] == "password:ops"
    assert "banned for 2 s" in row["last_error"]
    assert [b["device"] for b in _get(st, "/api/bans")["bans"]] == ["dev1"]  # type: ignore[union-attr]
    # it is back once the ban lapsed (the agent obeys the hint: not before)
    took = wait_for(lambda: "dev1" in st.gateway.sessions, 6, "dev1 back after its ban")
    assert took > 0.5
    assert _get(st, "/api/summary")["banned"] == 0
    assert _get(st, "/api/devices")["devices"][0]["banned"] is None  # type: ignore[index]


def test_a_ban_of_a_device_without_a_session_and_unban(st: Stack) -> None:
    status, data = _post(st, "/api/devices/dev2/kick?ban=600", {"by": "t"})
    assert status == 200 and data["kicked"] is False and data["banned"]["left_s"] > 599  # type: ignore[index]
    assert _get(st, "/api/summary")["banned"] == 1
    assert _post(st, "/api/devices/dev2/unban", {"by": "t"}) == (
        200,
        {"node": "node-1", "device": "dev2", "unbanned": True},
    )
    assert _post(st, "/api/devices/dev2/unban", {})[1]["unbanned"] is False
    st.start_agent("dev2")  # it connects at once again
    # no ban, no session: still 404 as before
    assert _post(st, KICK, {})[0] == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (KICK, {"ban": 0}),
        (KICK, {"ban": MAX_BAN_S + 1}),
        (KICK, {"ban": "soon"}),
        (KICK, {"ban": True}),
        (KICK, {"ban": 1.5}),
        (KICK, {"ban": -5}),
        (KICK + "?ban=99999999999", {}),
        (KICK + "?ban=60", {"ban": 120}),
    ],
)
def test_a_bad_ban_is_refused_and_nothing_happens(
    st: Stack, path: str, body: dict[str, object]
) -> None:
    st.start_agent("dev1")
    status, data = _post(st, path, body)
    assert status == 400 and "ban" in str(data["error"]), data
    assert "dev1" in st.gateway.sessions and _get(st, "/api/summary")["banned"] == 0


def test_the_console_bans_on_every_node_and_audits_it(st: Stack) -> None:
    st.start_agent("dev1")
    ops, csrf = st.login("ops")
    headers = {"Cookie": ops, "X-CSRF-Token": csrf, "Origin": st.origin}
    body = {"device": "dev1", "node": "node-1", "ban": 600}
    status, _, data = st.request("POST", "/api/actions/kick", body, headers)
    assert status == 200, data
    assert data == {
        "device": "dev1",
        "kicked_on": ["node-1"],
        "banned_on": ["node-1"],
        "ban_s": 600,
    }
    assert st.gateway.tunnel.bans.get("dev1", st.gateway.loop.time()) is not None  # type: ignore[union-attr]
    audit = (st.tmp / "audit.log").read_text().splitlines()
    assert '"action":"kick-ban"' in audit[-1] and '"ban":600' in audit[-1]
    status, _, data = st.request("POST", "/api/actions/kick", body | {"ban": 0}, headers)
    assert status == 400 and "ban must be" in data["error"]
    status, _, data = st.request("POST", "/api/actions/unban", {"device": "dev1"}, headers)
    assert status == 200 and data == {"device": "dev1", "unbanned_on": ["node-1"]}, data
    viewer, vcsrf = st.login("viv")
    vh = {"Cookie": viewer, "X-CSRF-Token": vcsrf, "Origin": st.origin}
    status, _, data = st.request("POST", "/api/actions/kick", body, vh)
    assert status == 403 and st.gateway.tunnel.bans.get("dev1", 0.0) is None
