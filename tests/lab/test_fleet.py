"""A fleet through a crash and a preemption: every agent back, none stuck, none on the backup.

The lab tests build the seed's cluster (VRRPv3 advert_int 0.1 s, so that the whole run stays
well under a minute) with a couple of hundred agents in two agent processes; the pure tests
check how the records are read (fleetstats) without a lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hagate.lab.demo.configs import ClusterPlan
from hagate.lab.demo.fleet import FleetPlan
from hagate.lab.demo.fleetstats import parse_events, parse_probes, quantile, storm

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fleet.py"


def test_quantiles_count_the_whole_fleet() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5, 4) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 1.0, 4) == 4.0
    assert quantile([1.0, 2.0, 3.0], 1.0, 4) is None  # one of four never came back
    assert quantile([], 0.5, 0) is None


def test_storm_reads_agents_and_probes() -> None:
    t0 = 100.0
    events = parse_events(
        [
            "99.0 0 up\n",  # before the change: ignored
            "100.01 0 down\n",
            "100.02 1 down\n",
            "103.5 0 up\n",
            "103.7 1 up\n",
            "103.9 1 up\n",  # a second session of 1: the first one counts
            "104.0 2 u",  # a torn last line
        ]
    )
    probes = parse_probes(
        [
            "100.1 100.2 0 0\n",
            "103.6 103.62 0 1\n",
            "100.1 100.6 1 0\n",
            "103.7 103.8 1 0\n",
            "103.9 103.95 1 1\n",
            "101.0 101.1 2 1\n",  # never failed: 0
        ]
    )
    st = storm(events, probes, t0, agents=2, sampled=4)
    assert st.moved == 2 and st.stuck == 0
    assert st.agents_at(0.5) == pytest.approx(3.5) and st.agents_at(1.0) == pytest.approx(3.7)
    assert sorted(st.reach) == pytest.approx([0.0, 3.62, 3.95])
    assert st.unreached == 1  # the fourth sampled device never answered
    assert st.reach_at(1.0) is None and st.reach_at(0.75) == pytest.approx(3.95)
    assert st.peak_rate == 2.0
    assert st.curve[-1][1] == pytest.approx(3 / 4)


def test_fleet_plan_spreads_devices_and_samples() -> None:
    plan = FleetPlan(10_000)
    assert plan.processes == 4 and sum(c for _f, c in plan.shares()) == 10_000
    assert len(plan.sampled()) == 64 and plan.sampled()[0] == 0
    assert {i * 4 // 10_000 for i in plan.sampled()} == {0, 1, 2, 3}  # every process probed
    assert FleetPlan(3, sample=64).sampled() == [0, 1, 2]
    with pytest.raises(ValueError):
        FleetPlan(0)


@pytest.mark.lab
def test_fleet_comes_back_after_a_crash_and_a_preemption() -> None:
    from hagate.lab.demo.fleetrun import FleetRun
    from hagate.lab.demo.topology import NODE1

    n = 240
    run = FleetRun(ClusterPlan(0.1, 3), FleetPlan(n, procs=2, sample=24), prefix="hgft")
    try:
        run.bring_up()
        crash = run.crash(NODE1)
        back = run.restore(NODE1)
    finally:
        left = run.close()
    assert not left
    for change in (crash, back):
        st = change.storm
        assert st is not None
        assert not change.problems, (change.event, change.problems)
        assert st.moved == n and st.stuck == 0 and st.unreached == 0, change.event
        assert change.wrong_node == 0
    assert crash.attached["node-2"] >= n and back.attached["node-1"] >= n
    assert back.attached["node-2"] == 0  # none left attached to the backup
    # node-2 lost the VIP: it dropped its agents' sessions at its next heartbeat, not after
    # its pings went unanswered (None: already gone when the storm was over)
    assert back.stale_s is None or (back.vip_s is not None and back.stale_s < back.vip_s + 3)
    # every agent back within a few seconds of the VIP's move, on a loaded 2-core machine
    for change in (crash, back):
        assert change.vip_s is not None and change.storm is not None
        assert (change.storm.agents_at(1.0) or 99) < change.vip_s + 5, change.row()


@pytest.mark.lab
def test_fleet_with_standby_is_promoted_after_a_crash_and_a_preemption() -> None:
    """Warm standby on: after the crash the new master promotes the standbys its agents
    parked (no handshake), after node-1's return node-1 promotes the ones parked at it;
    every agent back, none stuck, none left on the backup, none reachable at the wrong node."""
    from hagate.lab.demo.fleetrun import FleetRun
    from hagate.lab.demo.topology import NODE1

    n = 240
    plan = FleetPlan(n, procs=2, sample=24, standby=True)
    run = FleetRun(ClusterPlan(0.1, 3), plan, prefix="hgfs")
    try:
        run.bring_up()
        crash = run.crash(NODE1)
        back = run.restore(NODE1)
    finally:
        left = run.close()
    assert not left
    for change in (crash, back):
        st = change.storm
        assert st is not None
        assert not change.problems, (change.event, change.problems)
        assert st.moved == n and st.stuck == 0 and st.unreached == 0, change.event
        assert change.wrong_node == 0
        assert change.standbys_before == n, change.row()
        # every agent came back by promotion: no session from a hello (handshake) in the
        # storm (the handshakes counted there are the probes' data connections)
        assert change.handshakes.get("promoted") == n, change.row()
        assert change.handshakes.get("sessions") == n, change.row()
        print(change.event, change.row())
    assert crash.attached["node-2"] >= n and back.attached["node-1"] >= n
    assert back.attached["node-2"] == 0  # none left attached to the backup
    for change in (crash, back):
        assert change.vip_s is not None and change.storm is not None
        assert (change.storm.agents_at(1.0) or 99) < change.vip_s + 1.5, change.row()


@pytest.mark.lab
def test_bench_smoke() -> None:
    args = ["--devices", "30", "--advert-int", "0.1", "--sample", "6", "--recipes", "sticky"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args, "--schedule", "steady", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    rows = {r["event"]: r for r in report["rows"]}
    assert set(rows) == {"crash", "return"}
    assert rows["crash"]["agents_moved"] == 30 and rows["crash"]["agents_100_s"] is not None
    assert rows["return"]["agents_moved"] == 0  # sticky: node-1's return moves nobody
    assert rows["return"]["reach_100_s"] == 0.0  # no sampled device was ever unreachable
    assert report["idle"][0]["agents_idle_cpu_pct"] >= 0


def test_tail_reads_only_appended_complete_lines(tmp_path: Path) -> None:
    from hagate.lab.demo.fleet import Tail

    path = tmp_path / "events0.txt"
    tail = Tail(path)
    assert tail.new_lines() == []  # not written yet
    path.write_text("1.0 0 up\n2.0 1 u")
    assert parse_events(tail.new_lines()) == [(1.0, 0, True)]  # the torn line waits
    with path.open("a") as f:
        f.write("p\n3.0 0 down\n")
    assert parse_events(tail.new_lines()) == [(2.0, 1, True), (3.0, 0, False)]
    assert tail.new_lines() == []
