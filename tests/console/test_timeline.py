"""The console's timeline: transitions, failovers and their outages, from status snapshots."""

from __future__ import annotations

from tests.console.kit import snapshot

from hagate.console.timeline import EventKind, Timeline


def kinds(tl: Timeline) -> list[tuple[str, str]]:
    return [(e.kind.value, e.node) for e in tl.events]


def test_start_up_history_then_silent_crash() -> None:
    tl = Timeline()
    t = 1000.0
    tl.observe("node-1", snapshot("MASTER", 255, t - 50, "BACKUP", "address owner"), t)
    tl.observe("node-2", snapshot("BACKUP", 200, t - 49, "INITIALIZE", "startup"), t)
    assert kinds(tl) == [("transition", "node-1"), ("transition", "node-2")]
    assert tl.masters() == {"VI_1": "node-1"}
    # polled again unchanged: nothing new
    tl.observe("node-1", snapshot("MASTER", 255, t - 50, "BACKUP", "address owner"), t + 0.25)
    assert len(tl.events) == 2
    # node-1 is SIGKILLed just after t+0.25; node-2 takes over at t+3.5
    tl.observe("node-1", None, t + 0.5, "stale status socket")
    tl.observe("node-2", snapshot("MASTER", 200, t + 3.5, "BACKUP", "master down"), t + 3.6)
    assert kinds(tl)[2:] == [("unreachable", "node-1"), ("failover", "node-2")]
    failover = tl.events[-1]
    assert failover.kind is EventKind.FAILOVER
    assert failover.from_node == "node-1" and failover.reason == "master down"
    assert failover.outage_s == 3.25  # from the last poll that saw node-1 MASTER
    assert "outage 3.25 s" in failover.text
    assert tl.masters() == {"VI_1": "node-2"}
    # node-1 comes back, preempts (priority 255): node-2 leaves MASTER first
    tl.observe("node-1", snapshot("BACKUP", 255, t + 9.0, "INITIALIZE", "startup"), t + 9.1)
    tl.observe("node-2", snapshot("BACKUP", 200, t + 10.0, "MASTER", "higher priority"), t + 10.1)
    tl.observe("node-1", snapshot("MASTER", 255, t + 10.02, "BACKUP", "preempt"), t + 10.1)
    back = tl.events[-1]
    assert back.kind is EventKind.FAILOVER and back.from_node == "node-2"
    assert back.outage_s == 0.02
    assert ("reachable", "node-1") in kinds(tl)


def test_graceful_handover_outage_from_old_masters_own_transition() -> None:
    tl = Timeline()
    t = 2000.0
    tl.observe("a", snapshot("MASTER", 150, t - 10, "BACKUP", "x"), t)
    tl.observe("b", snapshot("BACKUP", 100, t - 10, "INITIALIZE", "x"), t)
    # a is stopped (priority 0 advert) at t+1.000, b MASTER at t+1.030; the console sees
    # b first, a a poll later
    tl.observe("b", snapshot("MASTER", 100, t + 1.03, "BACKUP", "priority 0 seen"), t + 1.2)
    assert tl.events[-1].outage_s == 1.03  # all the console knows so far: a MASTER at t
    tl.observe("a", snapshot("BACKUP", 150, t + 1.0, "MASTER", "shutdown"), t + 1.2)
    failover = next(e for e in tl.events if e.kind is EventKind.FAILOVER)
    assert failover.node == "b" and failover.from_node == "a"
    # seen first: bounded by the last poll that saw a MASTER; then a's own time narrows it
    assert failover.outage_s == 0.03 and "outage 0.03 s" in failover.text
    # next time the order is the other way round: a's own time is used
    tl.observe("a", snapshot("MASTER", 150, t + 5.0, "BACKUP", "preempt"), t + 5.1)
    tl.observe("b", snapshot("BACKUP", 100, t + 5.01, "MASTER", "higher"), t + 5.1)
    tl.observe("a", snapshot("BACKUP", 150, t + 8.0, "MASTER", "shutdown"), t + 8.1)
    tl.observe("b", snapshot("MASTER", 100, t + 8.04, "BACKUP", "priority 0 seen"), t + 8.1)
    last = tl.events[-1]
    assert last.kind is EventKind.FAILOVER and last.from_node == "a"
    assert last.outage_s == 0.04


def test_garbage_snapshots_are_ignored() -> None:
    tl = Timeline()
    tl.observe("n", {"instances": ["x", 3, None, {"state": "BACKUP"}]}, 1.0)
    tl.observe("n", {"instances": None}, 2.0)
    tl.observe("n", {}, 3.0)
    assert list(tl.events) == []
    json_events = [e.as_json() for e in tl.events]
    assert json_events == []


def with_history(
    snap: dict[str, object],
    history: list[tuple[float, str, str, str]],
    source: str,
    heard: tuple[str, float] | None = None,
) -> dict[str, object]:
    """``snap`` as a daemon with the status history serves it (what it heard, its source)."""
    inst = snap["instances"][0]  # type: ignore[index]
    inst["history"] = [{"at": a, "old": o, "new": n, "reason": r} for a, o, n, r in history]
    inst["last_transition"] = inst["history"][-1]
    inst["source"] = source
    inst["heard_master"] = None if heard is None else {"from": heard[0], "at": heard[1]}
    return snap


A, B = "10.1.1.5", "10.1.1.10"


def graceful(t: float) -> tuple[dict[str, object], dict[str, object]]:
    """a master from t+1, stopped at t+10; b master 30 ms later (it heard a at t+9.95)."""
    a = with_history(
        snapshot("BACKUP", 150, 0, "", ""),
        [
            (t, "INITIALIZE", "BACKUP", "startup"),
            (t + 1, "BACKUP", "MASTER", "down timer"),
            (t + 10, "MASTER", "BACKUP", "shutdown"),
        ],
        A,
    )
    b = with_history(
        snapshot("MASTER", 100, 0, "", ""),
        [
            (t + 0.5, "INITIALIZE", "BACKUP", "startup"),
            (t + 10.03, "BACKUP", "MASTER", "priority 0 seen"),
        ],
        B,
        (A, t + 9.95),
    )
    return a, b


def test_a_failover_before_the_console_started_either_poll_order() -> None:
    t = 5000.0
    for order in (("a", "b"), ("b", "a")):
        tl = Timeline()
        snaps = dict(zip(("a", "b"), graceful(t), strict=True))
        for node in order:
            tl.observe(node, snaps[node], t + 20)
        failovers = [e for e in tl.events if e.kind is EventKind.FAILOVER]
        assert len(failovers) == 1, (order, [e.text for e in tl.events])
        f = failovers[0]
        assert (f.from_node, f.node, f.outage_s, f.at) == ("a", "b", 0.03, t + 10.03), order
        assert tl.masters() == {"VI_1": "b"}
        assert len(tl.events) == 5  # every transition of both histories, once
        for node in order:  # polled again: nothing new
            tl.observe(node, snaps[node], t + 20.25)
        assert len(tl.events) == 5


def test_a_silent_crash_before_the_console_started_dated_by_heard_master() -> None:
    """a was SIGKILLed (no word) after its last advert at t+10, restarted at t+20; b took
    over at t+13.3: the outage runs from what b last heard from a."""
    t = 7000.0
    a = with_history(snapshot("BACKUP", 150, 0, "", ""), [(t + 20, "INITIALIZE", "BACKUP", "s")], A)
    b = with_history(
        snapshot("MASTER", 100, 0, "", ""),
        [(t, "INITIALIZE", "BACKUP", "startup"), (t + 13.3, "BACKUP", "MASTER", "down timer")],
        B,
        (A, t + 10.0),
    )
    for order in (("a", "b"), ("b", "a")):
        tl = Timeline()
        for node in order:
            tl.observe(node, a if node == "a" else b, t + 30)
        f = [e for e in tl.events if e.kind is EventKind.FAILOVER]
        assert [(e.from_node, e.node, e.outage_s) for e in f] == [("a", "b", 3.3)], order


def test_several_changes_between_two_polls_all_appear() -> None:
    t = 9000.0
    tl = Timeline()
    first = [(t, "INITIALIZE", "BACKUP", "startup"), (t + 1, "BACKUP", "MASTER", "down")]
    tl.observe("a", with_history(snapshot("MASTER", 150, 0, "", ""), first, A), t + 2)
    assert len(tl.events) == 2
    flap = [
        (t + 3, "MASTER", "FAULT", "eth0 down"),
        (t + 3.2, "FAULT", "BACKUP", "eth0 up"),
        (t + 3.5, "BACKUP", "MASTER", "down"),
    ]
    tl.observe("a", with_history(snapshot("MASTER", 150, 0, "", ""), first + flap, A), t + 4)
    assert [(e.old, e.new) for e in list(tl.events)[2:]] == [
        ("MASTER", "FAULT"),
        ("FAULT", "BACKUP"),
        ("BACKUP", "MASTER"),
    ]


def test_a_failover_follows_its_devices_back_to_the_new_master() -> None:
    """The user-visible part after the VRRP gap: until the new master has as many devices
    online as the old one last had, the failover says how many are back; then how long it
    took from the outage's start."""
    tl = Timeline()
    t = 1000.0
    tl.observe("node-1", snapshot("MASTER", 255, t - 50, "BACKUP", "address owner"), t)
    tl.observe("node-2", snapshot("BACKUP", 200, t - 49, "INITIALIZE", "startup"), t)
    tl.gateways({"node-1": 3, "node-2": 0}, t)
    assert not tl.recovering()
    tl.observe("node-1", None, t + 0.5, "stale status socket")  # SIGKILLed after t
    tl.gateways({"node-1": None, "node-2": 0}, t + 0.5)  # its gateway is gone too
    tl.observe("node-2", snapshot("MASTER", 200, t + 0.4, "BACKUP", "master down"), t + 0.75)
    failover = tl.events[-1]
    assert failover.kind is EventKind.FAILOVER and failover.outage_s == 0.4
    assert (failover.devices_expected, failover.devices_back) == (3, 0)
    assert tl.recovering() and failover.text.endswith("devices back 0/3")
    tl.gateways({"node-1": None, "node-2": 2}, t + 1.5)
    assert tl.events[-1].devices_back == 2 and tl.events[-1].devices_back_s is None
    tl.gateways({"node-1": None, "node-2": 3}, t + 2.0)
    done = tl.events[-1]
    assert done.devices_back == 3 and done.devices_back_s == 2.0  # from t (last seen MASTER)
    assert done.text == "failover node-1 -> node-2 (VI_1), outage 0.40 s, devices back 3/3 " \
        "after 2.00 s"  # fmt: skip
    assert done.as_json()["devices_back_s"] == 2.0
    assert not tl.recovering()
    tl.gateways({"node-1": None, "node-2": 4}, t + 3.0)  # later arrivals change nothing
    assert tl.events[-1] == done


def test_a_failover_with_no_devices_or_long_ago_is_not_followed() -> None:
    from hagate.console.timeline import RECOVERY_WAIT_S

    tl = Timeline()
    t = 1000.0
    tl.observe("node-1", snapshot("MASTER", 255, t - 50, "BACKUP", "address owner"), t)
    tl.gateways({"node-1": 0}, t)
    tl.observe("node-1", None, t + 0.5)
    tl.observe("node-2", snapshot("MASTER", 200, t + 0.4, "BACKUP", "master down"), t + 0.75)
    assert tl.events[-1].devices_expected is None and not tl.recovering()
    assert "devices" not in tl.events[-1].text
    # devices that never come back: followed RECOVERY_WAIT_S, then left as they got
    tl = Timeline()
    tl.observe("node-1", snapshot("MASTER", 255, t - 50, "BACKUP", "address owner"), t)
    tl.gateways({"node-1": 5}, t)
    tl.observe("node-1", None, t + 0.5)
    tl.observe("node-2", snapshot("MASTER", 200, t + 0.4, "BACKUP", "master down"), t + 0.75)
    tl.gateways({"node-2": 4}, t + 2)
    tl.gateways({"node-2": 4}, t + RECOVERY_WAIT_S + 1)
    assert not tl.recovering() and tl.events[-1].devices_back == 4
    assert tl.events[-1].text.endswith("devices back 4/5")
