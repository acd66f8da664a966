"""The ban table behind ``kick`` with ``ban``: bounded duration, bounded size, expiry on the
loop's clock (pure: ``now`` is passed in)."""

from __future__ import annotations

import pytest

from hagate.gateway.bans import MAX_BAN_S, DeviceBans


def test_a_ban_lasts_its_duration_and_then_lapses() -> None:
    bans = DeviceBans()
    ban = bans.ban("dev1", 60, "password:ops", now=100.0)
    assert ban.until == 160.0
    assert bans.remaining("dev1", 100.0) == 60.0
    assert bans.remaining("dev2", 100.0) == 0.0
    assert bans.get("dev1", 159.9) is ban
    assert bans.remaining("dev1", 160.0) == 0.0
    assert len(bans) == 0  # dropped when met expired


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
