"""`hagate simulate` end to end on real config files: timings, verdicts, faithfulness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hagate.simulate.cluster import ClusterError, load_cluster
from hagate.simulate.presets import PRESETS, initial_master, preset
from hagate.simulate.runner import Result, simulate
from hagate.simulate.scenario import ScenarioError, parse
from hagate.simulate.verdicts import Verdict, segments, verdicts
from hagate.vrrp.state import State
from hagate.vrrp.timers import master_down_interval
from hagate.vrrp.tracking import RiseFall

CONFIGS = Path(__file__).parent / "configs"
SEED = [str(CONFIGS / "seed" / "node1.conf"), str(CONFIGS / "seed" / "node2.conf")]
STICKY = [str(CONFIGS / "sticky" / "node1.conf"), str(CONFIGS / "sticky" / "node2.conf")]
DELAY = 0.0005  # the link's default propagation delay


def run(files: list[str], text: str, seed: int = 0) -> tuple[Result, list[Verdict]]:
    cluster = load_cluster(files)
    result = simulate(cluster, parse(text, {h.name: h.items() for h in cluster.hosts}), seed=seed)
    return result, verdicts(result)


def becomes(result: Result, key: str, state: State) -> list[float]:
    return [t for t, n, a in result.link.transitions(key) if a.new is state and n == key]


def texts(found: list[Verdict], kind: str) -> list[str]:
    return [v.text for v in found if v.kind == kind]


def conf(path: Path, **kw: object) -> str:
    path.write_text(conf_text(**kw))  # type: ignore[arg-type]
    return str(path)


def conf_text(
    *,
    priority: int,
    src: str,
    peer: str | None = None,
    state: str = "BACKUP",
    extra: str = "",
    scripts: str = "",
    password: str = "secret",
    vrid: int = 51,
) -> str:
    unicast = (
        f"unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}"
        if peer
        else (f"mcast_src_ip {src}")
    )
    return f"""{scripts}
vrrp_instance VI_{vrid} {{
    state {state}
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int 1
    {unicast}
    authentication {{
        auth_type PASS
        auth_pass {password}
    }}
    virtual_ipaddress {{
        10.1.1.{vrid + 49}/24
    }}
    {extra}
}}
"""


CHK = """vrrp_script chk_app {
    script "/usr/local/bin/chk_app"
    interval 3
    weight WEIGHT
    rise 2
    fall 3
}
"""


def tracked_pair(tmp_path: Path, weight: int, b_priority: int) -> tuple[str, str]:
    """Node a (10.1.1.5, priority 200) tracks chk_app with ``weight``; node b has no script."""
    a = conf(
        tmp_path / "a.conf",
        priority=200,
        src="10.1.1.5",
        scripts=CHK.replace("WEIGHT", str(weight)),
        extra="track_script {\n        chk_app\n    }",
    )
    b = conf(tmp_path / "b.conf", priority=b_priority, src="10.1.1.10")
    return a, b


# ---- the seed pair and the sticky recipe (keepalived behaviours already measured) -----------


def test_seed_pair_fails_over_and_the_owner_takes_the_vip_back() -> None:
    result, found = run(SEED, "crash node1 at 10.3s; restart node1 at 30s; end at 40s")
    mdi = master_down_interval(2, 200, 100)
    assert mdi == pytest.approx(3 + 56 / 256)
    # node1 advertised at 0, 1, ..., 10; node2 waits Master_Down_Interval after the last one.
    assert becomes(result, "node2", State.MASTER) == [pytest.approx(10.0 + DELAY + mdi)]
    assert becomes(result, "node1", State.MASTER) == [0.0, 30.0]
    assert becomes(result, "node2", State.BACKUP)[-1] == pytest.approx(30.0 + DELAY)
    assert result.link.vip_holders() == ["node1"]
    assert any(
        "node2 takes over 10.1.1.100 at 13.2 s, 2.92 s after node1 crashed" in t
        for t in texts(found, "failover")
    )
    assert texts(found, "preemption") == [
        "node1 takes the VIP back from node2 at 30.0 s (preemption: node1 has priority 255 "
        "(address owner) and no nopreempt)"
    ]
    assert "10.1.1.100 is held by nobody from 10.3 s to 13.2 s (2.92 s)" in texts(found, "outage")


def test_sticky_recipe_keeps_the_vip_on_the_standby() -> None:
    result, found = run(STICKY, "crash node1 at 10s; restart node1 at 30s; end at 60s")
    assert becomes(result, "node1", State.MASTER) == [pytest.approx(3 + 56 / 256)]
    assert becomes(result, "node2", State.MASTER) == [pytest.approx(9.21875 + DELAY + 3.609375)]
    assert result.link.state("node1") is State.BACKUP
    assert result.link.vip_holders() == ["node2"]
    assert texts(found, "preemption") == []
    assert texts(found, "sticky") == [
        "node1 is back at 30.0 s and stays BACKUP: its nopreempt leaves the VIP on node2 "
        "(priority 100 < 200)"
    ]
    assert found[-1].text == "at 60.0 s: node1 BACKUP (200); node2 MASTER (100) holds 10.1.1.100"


def test_graceful_stop_hands_over_after_skew_time() -> None:
    result, found = run(SEED, "stop node1 at 10.5s; start node1 at 20s; end at 25s")
    assert becomes(result, "node2", State.MASTER) == [pytest.approx(10.5 + DELAY + 56 / 256)]
    [outage] = texts(found, "outage")
    assert outage == "10.1.1.100 is held by nobody from 10.5 s to 10.7 s (0.22 s)"
    assert any("after node1 stopped (priority 0 advert)" in t for t in texts(found, "failover"))
    assert result.link.vip_holders() == ["node1"]


def test_partition_gives_a_split_brain_that_ends_when_it_heals() -> None:
    result, found = run(SEED, "partition at 70s for 10s; end at 90s")
    [split] = [t for t in texts(found, "split_brain")]
    assert split == (
        "split brain from 72.2 s to 80.0 s (7.8 s): node1 and node2 both hold 10.1.1.100"
    )
    [seg] = [s for s in segments(result, result.vips[0]) if len(s.holders) == 2 and s.start > 1]
    assert seg.start == pytest.approx(69.0 + DELAY + 3 + 56 / 256)
    assert seg.end == pytest.approx(80 + DELAY)


def test_short_partition_causes_nothing() -> None:
    _, found = run(SEED, "partition at 70s for 2s; end at 80s")
    assert texts(found, "split_brain") == [
        "the partition from 70.0 s to 72.0 s causes no split brain "
        "(too short for Master_Down_Interval)"
    ]


# ---- tracking: scripts by name, rise/fall/interval, weights, FAULT ---------------------------


def test_owner_ignores_script_weights() -> None:
    result, found = run(SEED, "fail chk_httpd on node1 from 40s to 60s; end at 70s")
    assert texts(found, "tracking") == [
        "chk_httpd has no effect on node1: weights are ignored at priority 255 "
        "(failing 40.0 s to 60.0 s)"
    ]
    assert becomes(result, "node1", State.MASTER) == [0.0]


def test_script_failure_counts_fall_runs_and_preempts(tmp_path: Path) -> None:
    a, b = tracked_pair(tmp_path, weight=-50, b_priority=180)
    result, found = run([a, b], "fail chk_app on a from 40s to 70s; end at 90s")
    # runs at 0, 3, ..., 39, 42: failures at 42, 45, 48 -> failed at 48 (fall 3)
    prio = [(e.time, e.text) for e in result.link.timeline if e.kind == "priority"]
    assert prio[0] == (48.0, "priority 200 -> 150: tracked chk_app failed (weight -50)")
    # recovery: successes at 72 and 75 (rise 2)
    assert prio[1][0] == 75.0
    # a is master from 3.21875 s and advertises at x.21875; b (180, preempt) ignores a's
    # adverts of 150 and takes over when its down timer runs out.
    a_master = becomes(result, "a", State.MASTER)
    assert a_master[0] == pytest.approx(3 + 56 / 256)
    b_master = becomes(result, "b", State.MASTER)
    assert b_master == [pytest.approx(47 + 56 / 256 + DELAY + master_down_interval(2, 180, 100))]
    # a (200, no nopreempt) takes the VIP back once its priority is back: it ignores b's
    # adverts from 75 s on, so its down timer runs out after b's last advert before 75 s.
    assert a_master[1] == pytest.approx(b_master[0] + 24 + DELAY + 3 + 56 / 256)
    tracking = texts(found, "tracking")
    assert tracking[0].startswith(
        "chk_app counts as failed on a at 48.0 s, 8.0 s after it started failing "
        "(fall 3 x interval 3 s): priority 200 -> 150; b takes the VIP from a at 50.5 s "
        "(preemption: b has priority 180 > 150 and no nopreempt; a's priority is down from "
        "200 to 150)"
    )


def test_short_failure_is_not_counted(tmp_path: Path) -> None:
    a, b = tracked_pair(tmp_path, weight=-50, b_priority=180)
    result, found = run([a, b], "fail chk_app on a from 40s to 46s; end at 60s")
    assert not [e for e in result.link.timeline if e.kind == "priority"]
    assert texts(found, "tracking") == [
        "chk_app failing on a (40.0 s to 46.0 s) changes nothing: too short to count "
        "(fall 3 x interval 3 s)"
    ]


def test_weight_zero_script_and_interface_put_the_node_in_fault(tmp_path: Path) -> None:
    a, b = tracked_pair(tmp_path, weight=0, b_priority=100)
    result, found = run(
        [a, b], "fail chk_app on a from 20s to 40s; fail eth0 on a from 60s to 70s; end at 90s"
    )
    faults = becomes(result, "a", State.FAULT)
    assert faults == [27.0, 60.0]  # runs at 21, 24, 27 fail (fall 3); the link at once
    # a sends priority 0 on leaving MASTER: b takes over after its Skew_Time.
    assert becomes(result, "b", State.MASTER)[:2] == [
        pytest.approx(27.0 + DELAY + 156 / 256),
        pytest.approx(60.0 + DELAY + 156 / 256),
    ]
    assert any("after a went to FAULT (tracked eth0" in t for t in texts(found, "failover"))
    assert result.link.vip_holders() == ["a"]


def test_script_failing_at_boot_decides_at_once(tmp_path: Path) -> None:
    a, b = tracked_pair(tmp_path, weight=-150, b_priority=100)
    result, _ = run([a, b], "fail chk_app on a at 0s; end at 20s")
    assert result.link.vip_holders() == ["b"]
    assert result.link.machine("a").effective_priority == 50


@pytest.mark.parametrize("rise,fall", [(1, 1), (2, 3), (3, 2), (5, 5)])
def test_rise_fall_counter_matches_the_daemon_runner(rise: int, fall: int) -> None:
    scripts = pytest.importorskip("hagate.daemon.scripts")
    changes: list[str] = []
    runner = scripts.ScriptRunner(
        scripts.ScriptSpec("x", ("true",), rise=rise, fall=fall),
        lambda r: changes.append(r.status.value),
    )
    ours = RiseFall(rise, fall)
    pattern = [True, False, False, True, False, False, False, True, True, True, False] * 3
    for ok in pattern:
        runner.record(ok)
        ours.record(ok)
        assert ours.ok is (None if runner.status.value == "init" else runner.status.value == "ok")


# ---- the wire: receive checks, unicast, addresses -------------------------------------------


def test_password_mismatch_means_two_masters(tmp_path: Path) -> None:
    a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5", peer="10.1.1.10")
    b = conf(tmp_path / "b.conf", priority=100, src="10.1.1.10", peer="10.1.1.5", password="x")
    result, found = run([a, b], "end at 20s")
    assert sorted(result.link.masters()) == ["a", "b"]
    discards = {e.text for e in result.link.timeline if e.kind == "discard"}
    assert "advert from a: discarded, auth password mismatch (wrong password)" in discards
    assert texts(found, "split_brain")[0].startswith("split brain from 3.6 s to 20.0 s")


def test_unicast_peers_that_miss_each_other(tmp_path: Path) -> None:
    a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5", peer="10.1.1.11")
    b = conf(tmp_path / "b.conf", priority=100, src="10.1.1.10", peer="10.1.1.5")
    result, _ = run([a, b], "end at 20s")
    assert sorted(result.link.masters()) == ["a", "b"]  # b never hears a


def test_multicast_nodes_without_addresses_get_synthesized_ones(tmp_path: Path) -> None:
    body = (
        "vrrp_instance V {{\n state BACKUP\n virtual_router_id 7\n priority {p}\n"
        " virtual_ipaddress {{\n  192.168.5.50/24\n }}\n}}\n"
    )
    (tmp_path / "x.conf").write_text(body.format(p=100))
    (tmp_path / "y.conf").write_text(body.format(p=100))
    cluster = load_cluster([str(tmp_path / "x.conf"), str(tmp_path / "y.conf")])
    addrs = [str(i.params.primary_address) for i in cluster.instances()]
    assert addrs == ["192.168.5.1", "192.168.5.2"]
    assert (
        "x has no unicast_src_ip/mcast_src_ip: simulated with address 192.168.5.1"
        in (cluster.notes[0])
    )
    result = simulate(cluster, parse("end at 10s"))
    assert result.link.masters() == ["y"]  # equal priorities: the higher address wins


def test_ipv6_vrrpv3_cluster(tmp_path: Path) -> None:
    body = (
        "vrrp_instance V6 {{\n state BACKUP\n interface eth0\n virtual_router_id 9\n"
        " priority {p}\n version 3\n advert_int 0.5\n mcast_src_ip fe80::{n}\n"
        " virtual_ipaddress {{\n  2001:db8::100/64\n }}\n}}\n"
    )
    (tmp_path / "p.conf").write_text(body.format(p=150, n=1))
    (tmp_path / "q.conf").write_text(body.format(p=100, n=2))
    result, found = run([str(tmp_path / "p.conf"), str(tmp_path / "q.conf")], "crash p at 5s")
    # p is master after its v3 Master_Down_Interval (3 * 0.5 + 106 * 0.5 / 256 s), then
    # advertises every 0.5 s; q takes over its own Master_Down_Interval after the last one.
    first = master_down_interval(3, 150, 50)
    last = first + 0.5 * int((5.0 - first) / 0.5)
    assert becomes(result, "p", State.MASTER) == [pytest.approx(first)]
    assert becomes(result, "q", State.MASTER) == [
        pytest.approx(last + DELAY + master_down_interval(3, 100, 50))
    ]
    assert found[-1].text.endswith("q MASTER (100) holds 2001:db8::100")


def test_hosts_with_two_instances(tmp_path: Path) -> None:
    for name, src, prios in (("a", "10.1.1.5", (200, 100)), ("b", "10.1.1.10", (100, 200))):
        text = "".join(
            conf_text(priority=p, src=src, vrid=vrid)
            for vrid, p in zip((51, 52), prios, strict=True)
        )
        (tmp_path / f"{name}.conf").write_text(text)
    result, _ = run([str(tmp_path / "a.conf"), str(tmp_path / "b.conf")], "crash a at 10s")
    assert result.keys == ["a/VI_51", "a/VI_52", "b/VI_51", "b/VI_52"]
    assert sorted(result.link.masters()) == ["b/VI_51", "b/VI_52"]
    assert [str(v) for v in result.vips] == ["10.1.1.100", "10.1.1.101"]


# ---- hosts, naming, errors -------------------------------------------------------------------


def test_start_first_keeps_a_node_down_and_restart_of_a_running_node_stops_it() -> None:
    result, _ = run(SEED, "start node2 at 5s; restart node1 at 20s; end at 30s")
    assert becomes(result, "node2", State.BACKUP)[0] == 5.0
    assert becomes(result, "node1", State.STOP) == [20.0]
    assert becomes(result, "node1", State.MASTER) == [0.0, 20.0]


def test_names_and_load_errors(tmp_path: Path) -> None:
    cluster = load_cluster([f"alpha={SEED[0]}", f"beta={SEED[1]}"])
    assert [h.name for h in cluster.hosts] == ["alpha", "beta"]
    with pytest.raises(ClusterError, match="both be called 'node1'"):
        load_cluster([SEED[0], SEED[0]])
    with pytest.raises(ClusterError, match=r"nope\.conf: no such file"):
        load_cluster([str(tmp_path / "nope.conf")])
    (tmp_path / "empty.conf").write_text("global_defs {\n router_id x\n}\n")
    with pytest.raises(ClusterError, match="no vrrp_instance to simulate"):
        load_cluster([str(tmp_path / "empty.conf")])
    (tmp_path / "broken.conf").write_text("vrrp_instance X {\n")
    with pytest.raises(ClusterError):
        load_cluster([str(tmp_path / "broken.conf")])


def test_loss_is_reproducible_and_counted() -> None:
    def once(seed: int) -> list[str]:
        _, found = run(SEED, "loss 60% from 10s to 70s; end at 90s", seed=seed)
        return [v.text for v in found]

    first = once(3)
    assert first == once(3)
    [loss] = [t for t in first if t.startswith("60% loss")]
    assert "adverts lost" in loss


def test_presets_are_valid_scenarios_for_the_seed_cluster() -> None:
    cluster = load_cluster(SEED)
    assert initial_master(cluster) == "node1"
    for name in PRESETS:
        text = preset(name, cluster)
        scenario = parse(text, {h.name: h.items() for h in cluster.hosts})
        assert scenario.steps, name
    standard = preset("standard", cluster)
    assert "crash node1 at 10s" in standard and "fail chk_httpd on node1" in standard


def test_ten_minutes_of_two_nodes_simulate_well_under_a_second() -> None:
    cluster = load_cluster(SEED)
    scenario = parse(
        "crash node1 at 60s; restart node1 at 120s; fail chk_httpd on node2 from 200s to 300s;"
        " partition at 400s for 30s; loss 20% from 450s to 550s; end at 600s",
        {h.name: h.items() for h in cluster.hosts},
    )
    began = time.perf_counter()
    result = simulate(cluster, scenario)
    verdicts(result)
    elapsed = time.perf_counter() - began
    assert result.link.now == 600.0
    assert elapsed < 1.0, elapsed


SYNC = [str(CONFIGS / "syncgroup" / "node1.conf"), str(CONFIGS / "syncgroup" / "node2.conf")]


def holders(result: Result, t: float) -> dict[str, str]:
    """VIP -> instance key holding it at time ``t``."""
    rows = [r for r in result.rows if r.entry.time <= t]
    views = rows[-1].views
    return {str(vip): key for key, view in views.items() for vip in view.vips}


def test_sync_group_moves_both_vips_together_on_a_member_fault() -> None:
    """The public instance's script fails on node1: keepalived's vrrp_sync_fault sends the
    private instance to FAULT too (priority 0 on both), so node2 takes both VIPs after
    Skew_Time, and both come back together (preemption) once the script recovers."""
    result, _ = run(SYNC, "fail chk_uplink on node1 from 10s to 30s; end at 40s")
    assert holders(result, 9.0) == {"10.1.1.100": "node1/PUBLIC", "10.2.2.100": "node1/PRIVATE"}
    assert becomes(result, "node1/PRIVATE", State.FAULT) == [10.0]  # not its own item
    assert holders(result, 20.0) == {"10.1.1.100": "node2/PUBLIC", "10.2.2.100": "node2/PRIVATE"}
    took = becomes(result, "node2/PUBLIC", State.MASTER)[0] - 10.0
    assert took == pytest.approx((256 - 90) / 256 + DELAY, abs=1e-6)  # PRIVATE's skew
    assert holders(result, 39.0) == {"10.1.1.100": "node1/PUBLIC", "10.2.2.100": "node1/PRIVATE"}
    groups = [r.entry.text for r in result.rows if r.entry.kind == "group"]
    assert "vrrp_sync_group GW MASTER -> FAULT: PUBLIC is in FAULT" in groups


def test_sync_group_on_a_crash_both_members_wait_for_each_other() -> None:
    result, _ = run(SYNC, "crash node1 at 10.3s; end at 20s")
    pub = becomes(result, "node2/PUBLIC", State.MASTER)
    priv = becomes(result, "node2/PRIVATE", State.MASTER)
    # PUBLIC (priority 100) times out first and waits; PRIVATE (90) times out and both go.
    assert pub == priv and len(pub) == 1
    last = max(
        e.time for e in result.link.timeline if e.node == "node1/PRIVATE" and e.kind == "advert"
    )
    assert pub[0] == pytest.approx(last + DELAY + master_down_interval(2, 90, 100), abs=1e-6)


def test_track_process_is_a_scenario_item(tmp_path: Path) -> None:
    files = []
    for name, prio, src in (("node1", 200, "10.1.1.5"), ("node2", 100, "10.1.1.10")):
        path = tmp_path / f"{name}.conf"
        path.write_text(
            "vrrp_track_process web {\n    process nginx\n}\n"
            "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n"
            f"    priority {prio}\n    mcast_src_ip {src}\n"
            "    track_process {\n        web\n    }\n"
            "    virtual_ipaddress {\n        10.1.1.100/24\n    }\n}\n"
        )
        files.append(str(path))
    result, _ = run(files, "fail web on node1 from 10s to 20s; end at 30s")
    assert becomes(result, "node1", State.FAULT) == [10.0]
    assert holders(result, 15.0) == {"10.1.1.100": "node2"}
    assert holders(result, 29.0) == {"10.1.1.100": "node1"}


# ---- issue 12's knobs that change timing: the same core, so the same times ----------------


def test_vrrp_startup_delay_holds_a_booting_nodes_down_timer(tmp_path: Path) -> None:
    """global_defs vrrp_startup_delay: the down timer starts when the delay ends (as the
    daemon's VrrpMachine.start), so a lone backup takes over 5 s later than without it."""
    times = []
    for delay in (0, 5):
        head = f"global_defs {{\n    vrrp_startup_delay {delay}\n}}\n" if delay else ""
        b = tmp_path / f"b{delay}.conf"
        b.write_text(head + conf_text(priority=100, src="10.1.1.10"))
        a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5")
        result, _ = run([f"a={a}", f"b={b}"], "start a at 19s; end at 19s")
        times.append(becomes(result, "b", State.MASTER))
    mdi = master_down_interval(2, 100, 100)
    assert times[0] == [pytest.approx(mdi, abs=1e-6)]
    assert times[1] == [pytest.approx(5 + mdi, abs=1e-6)]


def test_mcast_dst_ip_separates_instances_as_a_link_does(tmp_path: Path) -> None:
    """Two nodes sending to different groups never hear each other: both are master."""
    masters = []
    for group_b in ("224.0.0.18", "224.0.0.99"):
        a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5")
        b = conf(
            tmp_path / "b.conf", priority=100, src="10.1.1.10", extra=f"mcast_dst_ip {group_b}"
        )
        result, _ = run([f"a={a}", f"b={b}"], "end at 20s")
        masters.append(sorted(h for h in ("a", "b") if becomes(result, h, State.MASTER)))
    assert masters == [["a"], ["a", "b"]]


def test_unicast_fault_no_peer_holds_fault_and_the_other_node_serves(tmp_path: Path) -> None:
    a = conf(tmp_path / "a.conf", priority=200, src="10.1.1.5", peer="10.1.1.10")
    b = tmp_path / "b.conf"
    b.write_text(
        conf_text(priority=250, src="10.1.1.10", peer="10.1.1.5").replace(
            "unicast_peer {\n        10.1.1.5\n    }", "unicast_fault_no_peer"
        )
    )
    result, _ = run([f"a={a}", f"b={b}"], "end at 20s")
    assert becomes(result, "b", State.FAULT) == [0.0] and not becomes(result, "b", State.MASTER)
    assert holders(result, 19.0) == {"10.1.1.100": "a"}


def test_weighted_track_file_written_in_the_scenario_moves_the_master(tmp_path: Path) -> None:
    """'write N to FILE on NODE at T': number x weight goes into the priority (the core's
    set_tracked_level, as the daemon's file probe); the number stays across a restart."""
    top = "track_file level {\n    file /run/level\n    weight -10\n}\n"
    track = "track_file {\n        level\n    }"
    a = conf(tmp_path / "a.conf", priority=150, src="10.1.1.5", scripts=top, extra=track)
    b = conf(tmp_path / "b.conf", priority=120, src="10.1.1.10")
    result, _ = run(
        [f"a={a}", f"b={b}"],
        "write 4 to level on a at 10s; crash a at 20s; restart a at 25s; "
        "write 0 to level on a at 30s; end at 40s",
    )
    assert holders(result, 9.0) == {"10.1.1.100": "a"}
    assert holders(result, 19.0) == {"10.1.1.100": "b"}  # 150 - 40 = 110 < 120
    assert holders(result, 29.0) == {"10.1.1.100": "b"}  # restarted, still 4 in the file
    assert holders(result, 39.0) == {"10.1.1.100": "a"}
    assert not becomes(result, "a", State.FAULT)  # a level, never a fault


def test_write_is_checked_like_fail() -> None:
    with pytest.raises(ScenarioError, match="expected a whole number"):
        parse("write x to level on a at 1s", {"a": {"level"}})
    with pytest.raises(ScenarioError, match="tracks no script or interface 'other'"):
        parse("write 1 to other on a at 1s", {"a": {"level"}})
