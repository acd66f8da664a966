"""Watch one change of master until the user is served again, recording each milestone.

A failover (the master crashed) and a preemption (node-1 came back and took the VIP) pass
the same milestones: the new master adds the VIP, the user node sees its gratuitous ARP
(RFC 3768 §6.4.2 / RFC 9568 §6.4.2: a new master broadcasts one per VIP), the device agent
reconnects to the new master's gateway, and a user request through the VIP succeeds.
"""

from __future__ import annotations

import ipaddress
import time

from hagate.lab.demo.cluster import DemoCluster
from hagate.lab.demo.probe import RequestLoop
from hagate.lab.demo.ticker import Ticker
from hagate.lab.demo.timeline import Phase
from hagate.lab.demo.topology import VIP, NodeSpec
from hagate.vrrp.timers import master_down_interval

MILESTONES = ("master", "garp", "agent", "request")


class MasterChange:
    """Polls for the milestones of ``new`` becoming master after monotonic time ``after``."""

    def __init__(
        self,
        cluster: DemoCluster,
        loop: RequestLoop,
        phase: Phase,
        new: NodeSpec,
        old: NodeSpec,
        after: float,
        sessions_before: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.loop = loop
        self.phase = phase
        self.new = new
        self.old = old
        self.after = after
        self._vip = ipaddress.ip_address(VIP)
        self._mac = cluster.node(new).mac.lower()
        self._next_health = 0.0
        if sessions_before is None:
            sessions_before = cluster.sessions_total(new) or 0
        self._sessions_before = sessions_before

    def missing(self) -> list[str]:
        return [k for k in MILESTONES if self.phase.time_of(k) is None]

    @property
    def done(self) -> bool:
        return not self.missing()

    def poll(self) -> None:
        """Look once for every milestone not yet seen (call every ~10 ms)."""
        p, new = self.phase, self.new
        if p.time_of("master") is None:
            for e in list(self.cluster.addr_watchers[new.key].events):
                if e.t >= self.after and e.added and e.address.ip == self._vip:
                    p.add(e.t, "master", f"{new.label} MASTER: VIP {VIP} added")
                    break
        if p.time_of("released") is None:
            for e in list(self.cluster.addr_watchers[self.old.key].events):
                if e.t >= self.after and not e.added and e.address.ip == self._vip:
                    p.add(e.t, "released", f"{self.old.label} released the VIP")
                    break
        if p.time_of("garp") is None and self.cluster.garp is not None:
            for g in list(self.cluster.garp.events):
                if g.t >= self.after and g.ip == self._vip and g.mac == self._mac:
                    p.add(g.t, "garp", f"gratuitous ARP from {new.label} seen by user")
                    break
        now = time.monotonic()
        if p.time_of("agent") is None and now >= self._next_health:
            self._next_health = now + 0.02
            if (self.cluster.sessions_total(new) or 0) > self._sessions_before:
                t = (now + time.monotonic()) / 2
                p.add(max(t, self.after), "agent", f"agent reconnected to {new.label}")
        became = p.time_of("master")
        if p.time_of("request") is None and became is not None:
            first = self.loop.first_ok(became)  # sent after the VIP moved: served by `new`
            if first is not None:
                p.add(first.end, "request", "first user request OK through the VIP")
                agent = next((e for e in p.events if e.key == "agent"), None)
                if agent is None or agent.t > first.end:
                    # served through the tunnel: the session was up by then (the /healthz
                    # poll only saw it later)
                    if agent is not None:
                        p.events.remove(agent)
                    p.add(first.end, "agent", f"agent reconnected to {new.label}")
        p.complete = self.done


def failover_bound(version: int, advert_int: float) -> float:
    """How long a failover may take before it counts as failed.

    node-2's Master_Down_Interval (RFC 3768 §6.1 / RFC 9568 §6.1), plus the agent's redial
    (its heartbeat timeout and one lost SYN) and one request.
    """
    mdi = master_down_interval(version, 200, round(advert_int * 100))
    return mdi + (1.0 if advert_int < 1 else 3.0)


def crash(
    cluster: DemoCluster, loop: RequestLoop, victim: NodeSpec, survivor: NodeSpec
) -> MasterChange:
    """SIGKILL everything on ``victim``; the returned watch starts at the crash."""
    before = cluster.sessions_total(survivor) or 0
    t0 = cluster.crash(victim)
    phase = Phase("failover", f"failover: {victim.label} SIGKILLed", t0)
    phase.add(t0, "crash", f"{victim.label} SIGKILLed (master down)")
    return MasterChange(
        cluster, loop, phase, new=survivor, old=victim, after=t0, sessions_before=before
    )


def restore(
    cluster: DemoCluster, loop: RequestLoop, node: NodeSpec, other: NodeSpec
) -> MasterChange:
    """Start ``node``'s gateway, wait until healthy, start its VRRP daemon; watch from then."""
    cluster.start_gateway(node)
    cluster.wait_healthy(node)
    before = cluster.sessions_total(node) or 0
    t_r = time.monotonic()
    cluster.start_vrrp(node)
    phase = Phase("restore", f"{node.label} restored", t_r)
    phase.add(t_r, "restart", f"{node.label} VRRP daemon started")
    return MasterChange(
        cluster, loop, phase, new=node, old=other, after=t_r, sessions_before=before
    )


def watch(
    change: MasterChange, timeout: float, tail: float = 0.0, ticker: Ticker | None = None
) -> bool:
    """Poll until every milestone is seen (then ``tail`` s more) or ``timeout`` s have passed
    since ``change.after``; print ticker rows on the way. True when complete."""
    deadline = change.after + timeout
    finished_at: float | None = None
    while True:
        now = time.monotonic()
        change.poll()
        if change.done and finished_at is None:
            finished_at = now
        if ticker is not None:
            ticker.emit(change.loop.snapshot(), change.phase.events, now)
        if (finished_at is not None and now >= finished_at + tail) or now >= deadline:
            break
        time.sleep(0.01)
    if ticker is not None:
        ticker.flush(change.loop.snapshot(), change.phase.events, time.monotonic())
    return change.done
