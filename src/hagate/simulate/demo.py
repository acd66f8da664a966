"""`hagate lab demo` core part: the seed cluster's election, failover and failback, simulated."""

from __future__ import annotations

from ipaddress import IPv4Address

from hagate.simulate.link import Link
from hagate.vrrp.params import VrrpParams
from hagate.vrrp.state import State
from hagate.vrrp.timers import master_down_interval

VIP = IPv4Address("10.1.1.100")
SHOWN = {"event", "state", "vips", "garp", "priority", "drop"}


def seed_cluster() -> tuple[VrrpParams, VrrpParams]:
    """The seed cluster: node-1 owns the VIP (255), node-2 (200, nopreempt) stands by."""
    node1 = VrrpParams(
        vrid=51,
        primary_address=IPv4Address("10.1.1.5"),
        vips=(VIP,),
        priority=255,
        start_state=State.MASTER,
        name="node-1",
    )
    node2 = VrrpParams(
        vrid=51,
        primary_address=IPv4Address("10.1.1.10"),
        vips=(VIP,),
        priority=200,
        start_state=State.BACKUP,
        nopreempt=True,
        name="node-2",
    )
    return node1, node2


def run_core_demo(crash_at: float = 10.3, back_at: float = 20.0, end: float = 24.0) -> int:
    """Print the timeline; returns 0 when the cluster behaved as keepalived's would."""
    p1, p2 = seed_cluster()
    link = Link()
    link.add_node("node-1", p1)
    link.add_node("node-2", p2)
    link.start("node-1", at=0.0)
    link.start("node-2", at=0.0)
    link.crash("node-1", at=crash_at)
    link.restart("node-1", at=back_at)

    mdi = master_down_interval(p2.version, p2.priority, p2.advert_int_cs)
    print("hagate demo: two VRRP routers on a simulated link (virtual clock, no packets sent)")
    print(f"  node-1  {p1.primary_address!s:<10} priority 255 (address owner), state MASTER")
    print(f"  node-2  {p2.primary_address!s:<10} priority 200, state BACKUP, nopreempt")
    print(
        f"  VRID {p1.vrid}, VRRPv{p1.version}, advert_int {p1.advert_int:g} s, VIP {VIP}; "
        f"node-2's Master_Down_Interval = 3 x 1 s + (256-200)/256 s = {mdi:.3f} s"
    )
    print()
    link.listeners.append(lambda e: print(e.format()) if e.kind in SHOWN else None)
    link.run(crash_at - 0.01)
    print(f"{'':12}... node-1 sends an advert every second, node-2 stays BACKUP ...")
    link.run(end)
    print()

    takeover = [t for t, n, a in link.transitions("node-2") if a.new is State.MASTER]
    sent = [e.time for e in link.timeline if e.node == "node-1" and e.kind == "advert"]
    last_advert = max((t for t in sent if t < crash_at), default=0.0)
    ok = (
        bool(takeover)
        and abs(takeover[0] - (last_advert + link.delay + mdi)) < 1e-3
        and link.masters() == ["node-1"]
        and link.vip_holders() == ["node-1"]
    )
    if takeover:
        print(
            f"node-2 took over {takeover[0] - crash_at:.2f} s after the crash "
            f"({takeover[0] - last_advert:.3f} s after node-1's last advert)."
        )
    print(
        "node-1 came back with priority 255 and took the VIP back: nopreempt on node-2 only "
        "stops node-2 from preempting, as in keepalived."
    )
    masters = ", ".join(link.masters()) or "none"
    print(f"now: MASTER {masters}; VIP on {', '.join(link.vip_holders()) or 'nobody'}")
    if not ok:
        print("UNEXPECTED: the cluster did not behave as keepalived would")
    return 0 if ok else 1
