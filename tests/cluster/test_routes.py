"""The registry's pure decisions: newest by revision, per-node keys, reconcile."""

from __future__ import annotations

from hagate.cluster.routes import (
    Publish,
    Record,
    RouteTable,
    Unpublish,
    Verdict,
    device_key,
    node_key,
    node_value,
    reconcile,
    session_value,
)
from hagate.tunnel.wire import ServiceKind, ServiceSpec

WEB = (ServiceSpec("http", ServiceKind.HTTP), ServiceSpec("ssh", ServiceKind.TCP, None, 22))


def test_newest_revision_wins_whatever_the_order_events_arrive() -> None:
    t = RouteTable()
    t.put(device_key("dev1", "b"), session_value("sb", WEB), 9)
    t.put(device_key("dev1", "a"), session_value("sa", WEB), 5)
    best = t.winner("dev1")
    assert best is not None and (best.node, best.sid) == ("b", "sb")
    assert t.verdict("dev1", "a", "sa") is Verdict.SUPERSEDED
    assert t.verdict("dev1", "b", "sb") is Verdict.KEEP
    assert t.route("dev1", "a") == best
    assert t.route("dev1", "b") is None  # local: no splice


def test_a_session_whose_put_is_not_seen_yet_is_kept() -> None:
    t = RouteTable()
    t.put(device_key("dev1", "b"), session_value("sb", WEB), 9)
    assert t.verdict("dev1", "a", "new") is Verdict.KEEP
    t.put(device_key("dev1", "a"), session_value("old", WEB), 3)
    assert t.verdict("dev1", "a", "new") is Verdict.KEEP  # an older sid of ours is not us


def test_delete_of_the_winner_falls_back_and_reports_the_change() -> None:
    t = RouteTable()
    t.put(device_key("dev1", "a"), session_value("sa", WEB), 5)
    change = t.put(device_key("dev1", "b"), session_value("sb", WEB), 9)
    assert change is not None and change.before is not None and change.before.node == "a"
    change = t.delete(device_key("dev1", "b"), 10)
    assert change is not None and change.after is not None and change.after.node == "a"
    assert t.delete(device_key("dev1", "zz"), 11) is None
    t.delete(device_key("dev1", "a"), 12)
    assert t.winner("dev1") is None and "dev1" not in t.records


def test_nodes_and_bad_values() -> None:
    t = RouteTable()
    t.put(node_key("a"), node_value("10.0.0.1:7444"), 2)
    t.put(node_key("b"), b"not json", 3)
    t.put(device_key("dev1", "a"), b'{"sid": 3}', 4)
    t.put(b"/hagate/v1/devices/just-one-part", b"{}", 5)
    assert t.nodes["a"].peer == "10.0.0.1:7444" and "b" not in t.nodes
    assert t.bad_values == 2 and not t.records
    t.delete(node_key("a"), 6)
    assert not t.nodes and t.revision == 6


def test_record_resolves_services_like_a_session() -> None:
    r = Record("dev1", "a", "s", 1, WEB)
    assert r.service(None) == WEB[0]
    assert r.service("22") == WEB[1]
    assert r.service("ssh", ServiceKind.HTTP) is None


def test_snapshot_reset_reports_changed_winners_only() -> None:
    t = RouteTable()
    t.put(device_key("d1", "a"), session_value("1", ()), 2)
    t.put(device_key("d2", "a"), session_value("2", ()), 3)
    changes = t.reset(
        [
            (device_key("d1", "a"), session_value("1", ()), 2),
            (device_key("d3", "b"), session_value("3", ()), 7),
        ],
        8,
    )
    assert sorted(c.device for c in changes) == ["d2", "d3"]
    assert t.devices_per_node() == {"a": 1, "b": 1}


def test_reconcile_keeps_same_sessions_and_repairs_the_rest() -> None:
    local = {d: Publish(d, f"s{d}", ()) for d in ("d1", "d2", "d3")}
    published = {
        "d1": Record("d1", "a", "sd1", 4),  # same: left alone (keeps its revision)
        "d2": Record("d2", "a", "old", 5),  # different session: rewritten
        "d9": Record("d9", "a", "x", 6),  # no longer here: deleted
    }
    ops = reconcile(local, published)
    assert ops == [local["d2"], local["d3"], Unpublish("d9")]


def test_devices_per_node_is_kept_by_every_change() -> None:
    import random

    rng = random.Random(7)
    t = RouteTable()
    rev = 1
    for _ in range(3000):
        rev += 1
        key = device_key(f"d{rng.randrange(40)}", f"n{rng.randrange(4)}")
        if rng.random() < 0.6:
            t.put(key, session_value(str(rev), ()), rev)
        else:
            t.delete(key, rev)
        if rng.random() < 0.01:
            snapshot = [
                (device_key(d, n), session_value(r.sid, ()), r.revision)
                for d, per in t.records.items()
                for n, r in per.items()
            ]
            t.reset(snapshot, rev)
    counted = t.devices_per_node()
    t.recount()
    assert counted == t.devices_per_node() and sum(counted.values()) == len(t.records)


FIB = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.1.1.0/24 2 0 2
        |-- 10.1.1.0
           /24 link UNICAST
        |-- 10.1.1.5
           /32 host LOCAL
        |-- 10.1.1.101
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
        |-- 10.1.1.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.1.1.5
           /32 host LOCAL
"""


def test_local_addresses_from_fib_trie() -> None:
    from hagate.cluster.addresses import parse_fib_trie

    assert parse_fib_trie(FIB) == ("10.1.1.5", "10.1.1.101")
    assert parse_fib_trie("") == ()


def test_node_records_carry_addresses() -> None:
    t = RouteTable()
    t.put(node_key("a"), node_value("10.0.0.1:7444", ("10.0.0.1", "10.0.0.101")), 2)
    t.put(node_key("b"), b'{"peer": "10.0.0.2:7444"}', 3)  # an older node: no addrs
    assert t.nodes["a"].addresses == ("10.0.0.1", "10.0.0.101")
    assert t.nodes["b"].addresses == ()
