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
from hagate.lab.demo.timeline import Phase
from hagate.lab.demo.topology import VIP, NodeSpec

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
            if self.cluster.agents(new) >= 1:
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
