"""What production does to a VRRP node, as timed scenarios shared by the lab tests and the
side-by-side bench (tests/daemon/bench_resilience.py), so that hagate and keepalived 2.2.7 are
measured by the same code in the same run.

* :func:`interface_recreated`: the master's ``eth0`` is deleted and a new one with the same
  name (a new ifindex) comes back; seconds from its return until the master holds the VIP
  again (and the backup does not).
* :func:`vip_deleted`: ``ip addr del`` of the VIP on the master; seconds until it is back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hagate.lab import Lab, Node

from .labkit import VIP, delete_eth0, holders, recreate_eth0, start, vrrp_conf, wait_ready

N1, N2 = "10.1.1.5", "10.1.1.10"
NODES = {"n1": f"{N1}/24", "n2": f"{N2}/24"}


def seed(node: str, **kw: object) -> str:
    """The seed cluster: n1 MASTER 255, n2 BACKUP 200 nopreempt, unicast, PASS."""
    me, peer = (N1, N2) if node == "n1" else (N2, N1)
    base: dict[str, object] = {
        "state": "MASTER" if node == "n1" else "BACKUP",
        "priority": 255 if node == "n1" else 200,
        "nopreempt": node == "n2",
        "src": me,
        "peers": (peer,),
        "auth_pass": "your_pas",
    }
    base.update(kw)
    return vrrp_conf(**base)  # type: ignore[arg-type]


def start_impl(lab: Lab, node: Node, impl: str, conf: str) -> None:
    if impl == "keepalived":
        lab.start_keepalived(node, conf)
    else:
        start(lab, node, conf)
        wait_ready(lab, node)


def start_pair(lab: Lab, impl: str) -> tuple[Node, Node]:
    """n1 runs ``impl`` (hagate or keepalived), n2 hagate; until n1 alone holds the VIP."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    start_impl(lab, n1, impl, seed("n1"))
    start(lab, n2, seed("n2"))
    wait_ready(lab, n2)
    lab.wait_until(lambda: holders(lab, [n1, n2]) == ["n1"], 10, what="VIP on n1 only")
    time.sleep(0.5)  # n2 has heard n1
    return n1, n2


@dataclass(frozen=True)
class Recovery:
    impl: str
    seconds: float  # from the fault's end (or the deletion) to the VIP back on n1 alone
    backup_took_over: bool  # n2 held the VIP meanwhile


def interface_recreated(lab: Lab, impl: str, gone_for: float = 1.5) -> Recovery:
    n1, n2 = start_pair(lab, impl)
    delete_eth0(n1)
    took = lab.wait_until(lambda: n2.has_address(VIP), 5, what="n2 takes the VIP")
    time.sleep(max(0.0, gone_for - took))
    t_back = recreate_eth0(n1)
    lab.wait_until(lambda: holders(lab, [n1, n2]) == ["n1"], 15, what="VIP back on n1 only")
    return Recovery(impl, time.monotonic() - t_back, True)


def vip_deleted(lab: Lab, impl: str) -> Recovery:
    n1, n2 = start_pair(lab, impl)
    watch1, watch2 = n1.watch_addresses(), n2.watch_addresses()
    t_del = time.monotonic()
    n1.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"])
    back = watch1.wait_for(VIP, added=True, after=t_del, timeout=15)
    lab.wait_until(lambda: holders(lab, [n1, n2]) == ["n1"], 5, what="VIP on n1 only")
    took_over = any(e.added and str(e.address.ip) == VIP for e in list(watch2.events))
    return Recovery(impl, back.t - t_del, took_over)


# -- a flood of invalid packets at the backup (issue 16, item 7) ---------------------------

FLOODER = r"""
import socket, struct, sys, time
dst, rate, seconds, vrid = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def vrrp(v, vr, prio, count, body):
    return struct.pack("!BBBBHH", (v << 4) | 1, vr, prio, count, 10, 0) + body
kinds = []
for i in range(256):
    kinds.append(vrrp(3, (vrid + 1 + i % 200) % 256 or 1, 100, 1, bytes(4)))  # other VRIDs
    kinds.append(vrrp(3, vrid, 100, 3, bytes([i]) * 4))  # our VRID, length != count
    kinds.append(vrrp(3, vrid, i or 1, 1, bytes([i, 1, 2, 3])))  # our VRID, bad checksum
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
addr = (dst, 0)
sent = 0
start = time.monotonic()
end = start + seconds
n = len(kinds)
batch = 64
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = int((now - start) * rate)
    if sent >= due:
        time.sleep(0.0005)
        continue
    for k in range(batch):
        try:
            s.sendto(kinds[(sent + k) % n], addr)
        except OSError:
            pass
    sent += batch
print(sent)
"""


def raw_drops(node: Node, protocol: int = 112) -> int:
    """Kernel drops (receive queue full) of the node's raw sockets of ``protocol``, from
    /proc/net/raw in its namespace: the same figure for keepalived, old and new hagate."""
    text = node.run(["cat", "/proc/net/raw"]).stdout
    total = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 13 and int(fields[1].split(":")[1], 16) == protocol:
            total += int(fields[-1])
    return total


@dataclass(frozen=True)
class FloodResult:
    sent: int  # frames the flooder sent to the backup
    kernel_drops: int  # dropped by the backup's kernel (queue full)
    backup_transitions: int  # times the backup left BACKUP (took the VIP)
    backup_took_vip: bool


def flood(lab: Lab, *, rate: float = 60000, seconds: float = 4.0) -> FloodResult:
    """n1 MASTER and n2 BACKUP at VRRPv3 0.1 s (Master_Down_Interval 0.32 s: three adverts
    lost in a row and the backup takes over); node ``f`` floods n2 with invalid frames."""
    import sys

    n1, n2, f = lab.node("n1"), lab.node("n2"), lab.node("f")
    common: dict[str, object] = {"advert_int": 0.1, "version": 3, "auth_pass": None}
    start(lab, n1, seed("n1", **common))
    wait_ready(lab, n1)
    start(lab, n2, seed("n2", **common))
    wait_ready(lab, n2)
    lab.wait_until(lambda: holders(lab, [n1, n2]) == ["n1"], 10, what="VIP on n1 only")
    watch = n2.watch_addresses()
    time.sleep(0.5)
    drops0 = raw_drops(n2)
    done = f.run(
        [sys.executable, "-c", FLOODER, N2, str(rate), str(seconds), "51"],
        timeout=seconds + 30,
    )
    time.sleep(0.3)
    took = any(e.added and str(e.address.ip) == VIP for e in list(watch.events))
    transitions = sum(1 for e in list(watch.events) if e.added and str(e.address.ip) == VIP)
    return FloodResult(int(done.stdout.strip() or 0), raw_drops(n2) - drops0, transitions, took)
