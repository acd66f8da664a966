"""Drive a fleet through changes of master and measure each storm (bench, lab test, demo).

One cluster, the seed's roles or the sticky recipe: bring it up with the fleet connected to
node-1, then crash node-1 (SIGSTOP + SIGKILL of every process), bring it back (the seed's
node-1 preempts: every agent moves a second time; sticky: nothing moves), and SIGTERM the
master. Each change is timed from the signal (or from the VRRP daemon's start) on the lab's
clock: when the VIP moved, when the agents were back, when the sampled devices answered
users again, and the new master's gateway CPU over the storm.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from hagate.lab import LabError
from hagate.lab.demo.cluster import DemoCluster
from hagate.lab.demo.configs import ClusterPlan, VrrpImpl
from hagate.lab.demo.fleet import PREFIX, Fleet, FleetPlan
from hagate.lab.demo.fleetstats import Storm
from hagate.lab.demo.probe import http_get
from hagate.lab.demo.topology import (
    DOMAIN,
    GATEWAYS,
    HTTP_PORT,
    NODE1,
    NODE2,
    USER,
    VIP,
    VIP_PREFIX,
    NodeSpec,
)
from hagate.vrrp.timers import master_down_interval

HAGATE_BOTH = {NODE1.key: VrrpImpl.HAGATE, NODE2.key: VrrpImpl.HAGATE}
# How long a change waits for the fleet's standbys at the node that will take the VIP (plus
# 1 s per 200 agents): agents redial a node they left dead up to 30 s apart (jittered).
STANDBY_WAIT_S = 40.0
# A probe may wait for its answer this long (fleetprobe's --answer-timeout default).
PROBE_ANSWER_S = 2.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Change:
    """One change of master and what the fleet did."""

    recipe: str  # "seed" or "sticky"
    event: str  # "crash", "sigterm", "return"
    new: str  # the node expected to hold the VIP after it
    t0: float
    vip_s: float | None = None  # VIP added on the new master (None: it did not move)
    storm: Storm | None = None
    cpu_pct: float | None = None  # the new master gateway's CPU from the VIP move to 100 %
    agents_cpu_pct: float | None = None  # all agent processes together, over the same span
    attached: dict[str, int] = field(default_factory=dict)  # agents per node afterwards
    stale_s: float | None = None  # when the node without the VIP dropped its old sessions
    wrong_node: int = 0  # sampled devices that answered at the node without the VIP
    # the new master's tunnel handshakes over the storm (its /metrics): full, resumed, and
    # connections parked (not reset) while every handshake slot of their address was taken
    handshakes: dict[str, int] = field(default_factory=dict)
    standby: bool = False  # warm standby on (the fleet plan's)
    # standbys parked at the new master when the change began, and how long the bench
    # waited for them (a returning node gets its standbys before its VRRP daemon starts)
    standbys_before: int | None = None
    standby_wait_s: float | None = None
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        s = self.storm

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "recipe": self.recipe,
            "event": self.event,
            "new_master": self.new,
            "vip_moved_s": r(self.vip_s),
            "agents_moved": s.moved if s else None,
            "agents_50_s": r(s.agents_at(0.5)) if s else None,
            "agents_99_s": r(s.agents_at(0.99)) if s else None,
            "agents_100_s": r(s.agents_at(1.0)) if s else None,
            "stuck": s.stuck if s else None,
            "reach_99_s": r(s.reach_at(0.99)) if s else None,
            "reach_100_s": r(s.reach_at(1.0)) if s else None,
            "unreached": s.unreached if s else None,
            "handshakes_peak_per_s": r(s.peak_rate) if s else None,
            "handshakes_mean_per_s": r(s.mean_rate()) if s else None,
            "gateway_cpu_pct": r(self.cpu_pct),
            "agents_cpu_pct": r(self.agents_cpu_pct),
            "attached": self.attached,
            "stale_sessions_gone_s": r(self.stale_s),
            "wrong_node": self.wrong_node,
            "handshakes_full": self.handshakes.get("full"),
            "handshakes_resumed": self.handshakes.get("resumed"),
            "handshakes_parked": self.handshakes.get("parked"),
            "handshakes_refused": self.handshakes.get("refused"),
            "standby": self.standby,
            "standbys_before": self.standbys_before,
            "standby_wait_s": r(self.standby_wait_s),
            "promoted": self.handshakes.get("promoted"),
            "problems": self.problems,
        }


class FleetRun:
    """A cluster with a fleet; ``close()`` tears it down."""

    def __init__(
        self,
        plan: ClusterPlan,
        fleet: FleetPlan,
        prefix: str = "hgf",
        pki_from: Path | None = None,
    ) -> None:
        self.plan = plan
        self.fleet_plan = fleet
        self.cluster = DemoCluster.create(
            plan, HAGATE_BOTH, prefix=prefix, fleet=fleet, pki_from=pki_from
        )
        self.fleet = Fleet(self.cluster, fleet)
        self.recipe = "sticky" if plan.sticky else "seed"
        self.mdi = master_down_interval(plan.version, 200, round(plan.advert_int * 100))
        self.changes: list[Change] = []
        self.connect_s = 0.0

    # -- bring-up ------------------------------------------------------------------------

    def bring_up(self) -> None:
        c = self.cluster
        c.start_web()
        self.fleet.start_web()
        for spec in GATEWAYS:
            c.start_gateway(spec)
        c.wait_web()
        self.fleet.wait_web()
        for spec in GATEWAYS:
            c.wait_healthy(spec)
        c.start_vrrp_pair(self.mdi + 10)
        c.wait_backup(NODE2, 10.0)
        self.fleet.start_agents()
        self.connect_s = self.fleet.wait_connected(60 + self.fleet_plan.devices / 40)
        self.fleet.start_probe()
        self._wait_reachable(time.monotonic(), 30.0)

    def _wait_reachable(self, since: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        want = set(self.fleet_plan.sampled())
        while time.monotonic() < deadline:
            ok = {i for s, _e, i, good in self.fleet.probes() if good and s >= since}
            if ok >= want:
                return
            time.sleep(0.1)
        raise LabError(f"sampled devices not reachable within {timeout:.0f} s")

    def idle_cpu(self, seconds: float) -> tuple[float, float]:
        """CPU % of all agent processes together and of the master's gateway, idle."""
        pids = self.fleet.agent_pids()
        gw = self.gateway_pid(NODE1)
        a0, g0, t0 = sum(map(cpu_seconds, pids)), cpu_seconds(gw), time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        a1, g1 = sum(map(cpu_seconds, pids)), cpu_seconds(gw)
        return 100 * (a1 - a0) / dt, 100 * (g1 - g0) / dt

    def gateway_pid(self, spec: NodeSpec) -> int:
        proc = self.cluster._procs.get(f"{spec.key}/gateway")
        return proc.pid if proc is not None else 0

    # -- changes -------------------------------------------------------------------------

    def crash(self, victim: NodeSpec) -> Change:
        survivor = self.cluster.other(victim)
        parked, waited = self.wait_standbys(survivor)
        before = self._counters(survivor)
        cpu0 = cpu_seconds(self.gateway_pid(survivor))
        t0 = self.cluster.crash(victim)
        change = self._standby(Change(self.recipe, "crash", survivor.label, t0), parked, waited)
        return self._watch(change, survivor, cpu0, before=before)

    def sigterm(self, victim: NodeSpec) -> Change:
        survivor = self.cluster.other(victim)
        parked, waited = self.wait_standbys(survivor)
        before = self._counters(survivor)
        cpu0 = cpu_seconds(self.gateway_pid(survivor))
        t0 = self.cluster.node(victim).terminate()
        for key in [k for k in self.cluster._procs if k.startswith(f"{victim.key}/")]:
            del self.cluster._procs[key]
        change = Change(self.recipe, "sigterm", survivor.label, t0)
        return self._watch(self._standby(change, parked, waited), survivor, cpu0, before=before)

    def restore(self, node: NodeSpec) -> Change:
        """Start ``node``'s gateway, then its VRRP daemon (timed from the daemon's start).

        With standby the daemon starts once the fleet has parked its standbys at the node
        (the agents redial the node they left on a slow schedule, up to 30 s apart while it
        was dead): the return then measures promotion, as an operator who starts VRRP
        after the gateway has its standbys would see it.
        """
        c = self.cluster
        # The crashed node comes back as after a reboot: without the VIP its SIGKILLed VRRP
        # daemon left on the interface (the daemon would remove it at its start anyway; a
        # gateway with standbys must not see it as gained before then).
        c.node(node).run(["ip", "addr", "del", f"{VIP}/{VIP_PREFIX}", "dev", "eth0"], check=False)
        c.start_gateway(node)
        c.wait_healthy(node)
        parked, waited = self.wait_standbys(node) if not self.plan.sticky else (None, None)
        before = self._counters(node)
        cpu0 = cpu_seconds(self.gateway_pid(node))
        t0 = time.monotonic()
        c.start_vrrp(node)
        if self.plan.sticky:
            change = Change(self.recipe, "return", c.other(node).label, t0)
            return self._watch(change, c.other(node), 0.0, expect_move=False)
        change = self._standby(Change(self.recipe, "return", node.label, t0), parked, waited)
        return self._watch(change, node, cpu0, before=before)

    def _standby(self, change: Change, parked: int | None, waited: float | None) -> Change:
        change.standby = self.fleet_plan.standby
        change.standbys_before, change.standby_wait_s = parked, waited
        return change

    def standbys(self, spec: NodeSpec) -> int:
        return int(self.cluster.metrics(spec).get("hagate_tunnel_standby", 0))

    def wait_standbys(self, spec: NodeSpec) -> tuple[int | None, float | None]:
        """With standby: wait (bounded) until every agent has parked one at ``spec``;
        (standbys parked, seconds waited). Without: (None, None)."""
        if not self.fleet_plan.standby:
            return None, None
        n = self.fleet_plan.devices
        t0 = time.monotonic()
        timeout = STANDBY_WAIT_S + n / 200
        parked = self.standbys(spec)
        while parked < n and time.monotonic() - t0 < timeout:
            time.sleep(0.25)
            parked = self.standbys(spec)
        return parked, time.monotonic() - t0

    def _counters(self, spec: NodeSpec) -> dict[str, int]:
        m = self.cluster.metrics(spec)
        keys = {
            "full": 'hagate_tunnel_handshakes_total{kind="full"}',
            "resumed": 'hagate_tunnel_handshakes_total{kind="resumed"}',
            "parked": "hagate_handshakes_parked_total",
            "refused": "hagate_handshakes_refused_total",
            "promoted": "hagate_tunnel_standby_promoted_total",
            "sessions": "hagate_sessions_total",
        }
        return {k: int(m[name]) for k, name in keys.items() if name in m}

    def _vip_added(self, spec: NodeSpec, after: float) -> float | None:
        vip = ipaddress.ip_address(VIP)
        for e in list(self.cluster.addr_watchers[spec.key].events):
            if e.t >= after and e.added and e.address.ip == vip:
                return float(e.t)
        return None

    def _watch(
        self,
        change: Change,
        new: NodeSpec,
        cpu0: float,
        expect_move: bool = True,
        before: dict[str, int] | None = None,
    ) -> Change:
        n = self.fleet_plan.devices
        # the new master's counters from before the signal: read during the storm they
        # missed what it did first (a SIGTERM's promotions: 4,800 of 10,000 counted)
        before = self._counters(new) if before is None else before
        timeout = self.mdi + 30 + n / 50
        settle = self.mdi + 2.0  # the sticky return: nothing may move in this long
        t0 = change.t0
        cpu_end: float | None = None
        cpu1 = 0.0
        pids = self.fleet.agent_pids()
        agents0, agents1 = sum(map(cpu_seconds, pids)), 0.0
        vip_seen_at_cpu: float | None = None
        while True:
            now = time.monotonic()
            vip = self._vip_added(new, t0) if expect_move else None
            st = self.fleet.storm(t0, now)
            if expect_move:
                done = vip is not None and now - vip > 0.5 and len(st.back) >= n
                # every sampled device answered since its last failure (0.0: none failed, as
                # when standbys are promoted before a user notices; it was `> 0`, which then
                # waited for the timeout)
                done = done and st.unreached == 0 and st.reach_at(1.0) is not None
            else:
                done = now - t0 > settle
            if vip is not None and vip_seen_at_cpu is None:
                vip_seen_at_cpu = sum(map(cpu_seconds, pids))  # the storm starts here
            if expect_move and cpu_end is None and len(st.back) >= n:
                cpu_end, cpu1 = now, cpu_seconds(self.gateway_pid(new))
                agents1 = sum(map(cpu_seconds, pids))
            if done or now - t0 > timeout:
                break
            time.sleep(0.2)
        # A probe in flight when the storm looked done may still fail at its answer timeout:
        # its record must be in before the storm is read (it was 0.6 s: three such failures
        # landed after the last look and were read as unreached devices).
        time.sleep(PROBE_ANSWER_S + 0.6)
        change.storm = self.fleet.storm(t0, time.monotonic())
        while expect_move and change.storm.unreached and time.monotonic() - t0 < timeout:
            time.sleep(0.5)  # such a late failure: until that device answers again
            change.storm = self.fleet.storm(t0, time.monotonic())
        if vip is not None:
            change.vip_s = vip - t0
            back = change.storm.agents_at(1.0)
            if back is not None and cpu_end is not None and cpu_end > vip:
                # from the signal to when we saw the last agent back (within ~0.2 s), over
                # the storm's span (the new master is idle before the VIP moves)
                change.cpu_pct = 100 * (cpu1 - cpu0) / max(cpu_end - vip, 0.2)
                start = vip_seen_at_cpu if vip_seen_at_cpu is not None else agents0
                change.agents_cpu_pct = 100 * (agents1 - start) / max(cpu_end - vip, 0.2)
        after = self._counters(new)
        change.handshakes = {k: v - before.get(k, 0) for k, v in after.items()}
        self._check(change, new, expect_move)
        self.changes.append(change)
        return change

    def _check(self, change: Change, holder: NodeSpec, expect_move: bool) -> None:
        c, st = self.cluster, change.storm
        assert st is not None
        n = self.fleet_plan.devices
        for spec in GATEWAYS:
            data = c.health(spec)
            value = data.get("agents") if data else None
            change.attached[spec.label] = value if isinstance(value, int) else 0
        # a SIGKILLed node keeps the VIP on its interface (nothing runs there to remove it)
        live = [s for s in c.holders() if s == holder or c.node(s).pids()]
        if live != [holder]:
            change.problems.append(f"VIP holders {[s.label for s in live]}")
        if expect_move and st.moved < n:
            change.problems.append(f"only {st.moved} of {n} agents moved")
        if not expect_move and st.moved:
            change.problems.append(f"{st.moved} agents moved (sticky: none should)")
        if st.stuck:
            change.problems.append(f"{st.stuck} agents did not come back")
        if st.unreached:
            change.problems.append(f"{st.unreached} sampled devices unreachable")
        other = c.other(holder)
        if change.attached.get(holder.label, 0) < n:
            change.problems.append(f"{holder.label} has {change.attached.get(holder.label)}")
        # The node that lost the VIP still counts the sessions it had until its own pings
        # go unanswered (the agents' resets go to the VIP): how long, not a failure.
        t = time.monotonic()
        while change.attached.get(other.label, 0) and time.monotonic() - t < 20:
            time.sleep(0.25)
            data = c.health(other)
            value = data.get("agents") if data else 0
            change.attached[other.label] = value if isinstance(value, int) else 0
        change.stale_s = time.monotonic() - change.t0 if time.monotonic() - t > 0.01 else None
        if change.attached.get(other.label, 0):
            change.problems.append(f"{change.attached[other.label]} agents on {other.label}")
        change.wrong_node = self._wrong_node(other)
        if change.wrong_node:
            change.problems.append(f"{change.wrong_node} devices answered at {other.label}")

    def _wrong_node(self, other: NodeSpec) -> int:
        """Sampled devices that a user reaches at the node without the VIP (its own address)."""
        if not self.cluster.node(other).pids():
            return 0  # nothing runs there
        user = self.cluster.node(USER)
        bad = 0
        for i in self.fleet_plan.sampled()[:16]:
            try:
                status, _ = http_get(
                    lambda: user.socket(socket.AF_INET, socket.SOCK_STREAM),
                    (other.address, HTTP_PORT),
                    f"{PREFIX}{i}.{DOMAIN}",
                    "/",
                    0.5,
                )
            except (OSError, ValueError, LabError):
                continue
            bad += status == 200
        return bad

    def close(self) -> list[str]:
        return self.cluster.close()
