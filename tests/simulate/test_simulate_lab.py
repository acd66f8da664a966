"""Faithfulness: the same configs and scenario in the netns lab and in `hagate simulate`.

The seed pair (tests/simulate/configs/seed) runs under keepalived 2.2.7 and under
`hagate vrrp` in network namespaces of its own; node1 crashes 4.5 s after it took the VIP
(so its advert phase matches the simulation's) and restarts at 9 s. The simulated takeover
delay and the failback must match the lab's within its scheduling noise.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from hagate.simulate.cluster import load_cluster
from hagate.simulate.runner import simulate
from hagate.simulate.scenario import parse
from hagate.vrrp.state import State

CONFIGS = Path(__file__).parent / "configs" / "seed"
VIP = "10.1.1.100"
CRASH_AT, RESTART_AT = 4.5, 9.0
STARTUP_BOUND = 3.0  # seconds from spawn to the first advert, generous for CI load
NOISE = 0.25  # s: process scheduling, 5 ms address polling, daemon start-up


def simulated() -> tuple[float, float, list[str]]:
    cluster = load_cluster([str(CONFIGS / "node1.conf"), str(CONFIGS / "node2.conf")])
    text = f"crash node1 at {CRASH_AT}s; restart node1 at {RESTART_AT}s; end at 12s"
    result = simulate(cluster, parse(text, {h.name: h.items() for h in cluster.hosts}))
    moves = result.link.transitions("node2")
    takeover = next(t for t, _, a in moves if a.new is State.MASTER) - CRASH_AT
    back = next(t for t, _, a in moves if a.new is State.BACKUP and t >= RESTART_AT) - RESTART_AT
    return takeover, back, result.link.vip_holders()


@pytest.mark.lab
@pytest.mark.parametrize("daemon", ["keepalived", "hagate"])
def test_simulation_predicts_the_lab(daemon: str) -> None:
    from hagate.lab import Lab, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if daemon == "keepalived" and shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")
    sim_takeover, sim_back, sim_holders = simulated()
    confs = {n: (CONFIGS / f"{n}.conf").read_text() for n in ("node1", "node2")}
    with Lab.create(prefix="hgsim", nodes={"node1": "10.1.1.5/24", "node2": "10.1.1.10/24"}) as lab:
        n1, n2 = lab.node("node1"), lab.node("node2")

        def start(name: str) -> None:
            if daemon == "keepalived":
                lab.start_keepalived(name, confs[name])
            else:
                lab.start_hagate(name, confs[name])

        start("node2")
        start("node1")
        lab.wait_until(lambda: n1.has_address(VIP), 10, what="node1 to take the VIP")
        t_master = time.monotonic()
        time.sleep(max(0.0, t_master + CRASH_AT - time.monotonic()))
        t_crash = n1.crash()
        lab.wait_until(lambda: n2.has_address(VIP), 10, what="node2 to take over")
        lab_takeover = time.monotonic() - t_crash
        time.sleep(max(0.0, t_master + RESTART_AT - time.monotonic()))
        t_restart = time.monotonic()
        start("node1")
        lab.wait_until(lambda: not n2.has_address(VIP), 10, what="node2 to give the VIP back")
        lab_back = time.monotonic() - t_restart
        lab.wait_until(lambda: n1.has_address(VIP), 5, what="node1 to hold the VIP")
        lab_holders = [n.name for n in (n1, n2) if n.has_address(VIP)]
    print(
        f"{daemon}: takeover {lab_takeover:.3f} s (simulated {sim_takeover:.3f} s), "
        f"failback {lab_back:.3f} s (simulated {sim_back:.4f} s)"
    )
    assert abs(lab_takeover - sim_takeover) < NOISE, (daemon, lab_takeover, sim_takeover)
    # The lab's failback is the restarted daemon's own start-up (the simulation's is instant):
    # keepalived (C) needs ~0.07 s, hagate (Python, pyroute2 imports) ~0.4 s idle and over a
    # second on a loaded 2-core CI machine.
    assert sim_back < 0.01 and lab_back < STARTUP_BOUND, (daemon, lab_back, sim_back)
    assert lab_holders == sim_holders == ["node1"]
