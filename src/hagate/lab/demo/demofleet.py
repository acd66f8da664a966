"""`hagate lab demo --devices N`: the fleet curve of each change of master, for the demo.

The demo's own device tells the story of one failover; a fleet of ``N`` idle devices (the
bench's fleet: :mod:`hagate.lab.demo.fleet`) shows what the users of a whole fleet see:
how many devices are reachable again, second by second, after the crash and after node-1's
return. Each measured phase gets the milestones "99 % / 100 % of the fleet reachable" and a
curve; timeline.json keeps the curves and timeline.png draws them under the requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hagate.lab.demo.cluster import DemoCluster
from hagate.lab.demo.fleet import Fleet, FleetPlan
from hagate.lab.demo.fleetstats import Storm
from hagate.lab.demo.timeline import Phase

SAMPLE = 48  # sampled devices the users probe (the curve's resolution: 1/48 of the fleet)


@dataclass
class FleetCurve:
    """One phase's storm: when agents and sampled devices were back (s since ``t0``)."""

    phase: str
    start: float  # the phase's own start (the crash, the return) on the lab's clock
    storm: Storm

    def as_dict(self, t0: float) -> dict[str, object]:
        offset = self.start - t0
        st = self.storm

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "phase": self.phase,
            "start": round(offset, 4),
            "agents_moved": st.moved,
            "agents_99_s": r(st.agents_at(0.99)),
            "agents_100_s": r(st.agents_at(1.0)),
            "reach_99_s": r(st.reach_at(0.99)),
            "reach_100_s": r(st.reach_at(1.0)),
            "unreached": st.unreached,
            # (t since the crash, share of sampled devices reachable)
            "reachable": [(round(t + offset, 3), round(v, 4)) for t, v in st.curve],
            # (t since the crash, share of the moved agents reconnected)
            "agents": [
                (round(t + offset, 3), round((i + 1) / max(1, st.moved), 4))
                for i, t in enumerate(st.back)
            ],
        }


@dataclass
class DemoFleet:
    """The fleet's processes in the demo and the curves measured so far."""

    cluster: DemoCluster
    plan: FleetPlan
    fleet: Fleet = field(init=False)
    curves: list[FleetCurve] = field(default_factory=list)
    connect_s: float = 0.0

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.cluster, self.plan)

    @classmethod
    def plan_for(cls, devices: int) -> FleetPlan:
        return FleetPlan(devices, sample=SAMPLE)

    def start_web(self) -> None:
        self.fleet.start_web()

    def connect(self) -> float:
        """Start the agents and the users' probes; the seconds until every agent was up."""
        self.fleet.wait_web()
        self.fleet.start_agents()
        self.connect_s = self.fleet.wait_connected(60 + self.plan.devices / 40)
        self.fleet.start_probe()
        return self.connect_s

    def follow(self, phase: Phase, start: float, moves: bool, timeout: float) -> FleetCurve:
        """Wait until the fleet is back after ``start`` (or ``timeout``); add milestones."""
        n = self.plan.devices
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.fleet.storm(start, time.monotonic())
            back = len(st.back) >= st.moved and (st.moved >= n or not moves)
            if back and st.unreached == 0 and st.reach_at(1.0) is not None:
                break
            time.sleep(0.25)
        time.sleep(0.6)  # the probes' last answers reach their file
        st = self.fleet.storm(start, time.monotonic())
        curve = FleetCurve(phase.name, start, st)
        self.curves.append(curve)
        for share, key in ((0.99, "fleet99"), (1.0, "fleet100")):
            t = st.reach_at(share)
            if t is not None and t > 0:
                phase.add(start + t, key, f"{share:.0%} of {n:,} fleet devices reachable")
        return curve

    def summary(self, t0: float) -> dict[str, object]:
        return {
            "devices": self.plan.devices,
            "sampled": len(self.plan.sampled()),
            "processes": self.plan.processes,
            "connect_s": round(self.connect_s, 2),
            "phases": [c.as_dict(t0) for c in self.curves],
        }
