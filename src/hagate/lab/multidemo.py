"""`hagate lab demo --nodes 3`: N active gateway nodes on etcd, any node serves any device.

Three (or N) gateway nodes in namespaces, each master of its own VIP (`hagate vrrp` with the
keepalived.conf files `hagate cluster keepalived` writes) and running `hagate gateway` with
``[cluster]``; a 3-member etcd over TLS (client certificates required); one device per VIP
(the VIP its name picks); users sending requests to every device through every VIP (so through
every node, and after a crash through the node that took the VIP over). It shows, on one clock:

1. every user reaching every device, through the device's node or one peer hop;
2. SIGKILL of node 1: its VIP moves, its device redials and is served again from every node;
3. SIGKILL of one etcd member (quorum holds: nothing to see), then of all of etcd: every node
   says so in /healthz and keeps serving; etcd's return, and the registry catching up.

The active-standby demo stays `hagate lab demo`'s default.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from hagate.lab.demo.probe import RequestLoop
from hagate.lab.errors import LabError
from hagate.lab.multinode import DOMAIN, HTTP_PORT, MultiLab, Plan


@dataclass
class Timeline:
    t0: float
    out: TextIO
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str, at: float | None = None) -> float:
        t = (time.monotonic() if at is None else at) - self.t0
        prev = self.events[-1][0] if self.events else 0.0
        self.events.append((t, what))
        self.out.write(f"  {what:<58} {t:8.3f}   {t - prev:+7.3f}\n")
        self.out.flush()
        return t


def _wait(pred: Callable[[], object], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic()


def _ok_after(loop: RequestLoop, t: float) -> float | None:
    """When the first request sent after ``t`` that succeeded was answered."""
    return next((r.end for r in list(loop.results) if r.ok and r.start >= t), None)


def _served(ml: MultiLab, entry: int, device: str, timeout: float) -> Callable[[], bool]:
    return lambda: ml.get(entry, device, "/", timeout)[0] == 200


def run_multi_demo(
    nodes: int = 3,
    out: Path = Path("hagate-demo"),
    advert_int: float = 1.0,
    keep: bool = False,
    rate: float = 4.0,
    stream: TextIO | None = None,
) -> int:
    """Run the demo; 0 when every step went as described."""
    w = stream or sys.stdout
    plan = Plan(nodes=nodes, etcd=3, advert_int=advert_int, lease_ttl=5)
    w.write(
        f"hagate lab demo --nodes {nodes}: {nodes} active gateway nodes, 3-member etcd "
        "(TLS, client certificates)\n"
    )
    ml = MultiLab.create(plan, prefix="hgn")
    loops: dict[tuple[int, str], RequestLoop] = {}
    ok = False
    try:
        ml.start_etcd()
        ml.start_nodes()
        devices = [plan.device_on(i) for i in range(1, nodes + 1)]
        for dev in devices:
            ml.start_device(dev)
        for i in range(1, nodes + 1):
            for dev in devices:
                _wait(_served(ml, i, dev, 1.0), 20, f"{dev} via n{i}")
        first = ml.cluster_health(1)
        per = first.get("devices_per_node", {})
        w.write(
            f"\n  etcd: n1 uses {first.get('etcd_endpoint')}, TLS verified against the cluster "
            "CA, the node certificate as its client certificate\n"
        )
        w.write("\n  node   address      VIP (master)   devices\n")
        for i in range(1, nodes + 1):
            w.write(f"  n{i}     {plan.node_ip(i):<12} {plan.vip(i):<14} {per.get(f'n{i}', 0)}\n")
        w.write("\n  every user reaches every device (entry node x device, 200 = OK):\n")
        w.write("         " + "".join(f"{d:>10}" for d in devices) + "\n")
        for i in range(1, nodes + 1):
            row = "".join(
                f"{ml.get(i, d)[0]:>6} {'dir' if j == i else 'hop'}"
                for j, d in enumerate(devices, 1)
            )
            w.write(f"  via n{i} {row}\n")
        for i in range(1, nodes + 1):
            for dev in devices:
                loop = RequestLoop(
                    ml.node("user"),
                    (plan.vip(i), HTTP_PORT),  # users enter at every VIP
                    f"{dev}.{DOMAIN}",
                    f"hello from {dev}".encode(),
                    rate,
                    1.0,
                )
                loops[i, dev] = loop.start()
        time.sleep(1.0)

        w.write(f"\n  node n1 SIGKILLed{'':<41} t (s)    step (s)\n")
        t0 = time.monotonic()
        tl = Timeline(t0, w)
        ml.crash_node(1)
        tl.mark("n1 SIGKILLed (its VIP, its device)", t0)
        n2 = ml.node("n2")
        tl.mark(
            f"n2 holds {plan.vip(1)} (VRRP)",
            _wait(lambda: n2.has_address(plan.vip(1)), 30, "the VIP to move"),
        )
        moved = devices[0]
        vip_loop = loops[1, moved]
        _wait(lambda: _ok_after(vip_loop, t0) is not None, 30, f"a user request via {plan.vip(1)}")
        tl.mark(f"first user request OK via {plan.vip(1)}", _ok_after(vip_loop, t0))
        for i in range(2, nodes + 1):
            tl.mark(
                f"{moved} served again via n{i}",
                _wait(_served(ml, i, moved, 0.5), 30, f"{moved} via n{i}"),
            )
        tl.mark(
            "n1's lease expired: its records gone",
            _wait(lambda: "n1" not in ml.cluster_health(2).get("nodes", ["n1"]), 30, "n1 gone"),
        )

        held = ml.cluster_health(2).get("addresses", {})
        holders = [
            f"{vip} {'+'.join(n for n, addrs in sorted(held.items()) if vip in addrs) or '-'}"
            for vip in plan.vips()
        ]
        w.write("  VIPs held now, as the nodes publish them: " + ", ".join(holders) + "\n")
        w.write("\n  etcd: one member, then all of it\n")
        tl = Timeline(time.monotonic(), w)
        ml.kill_etcd(1)
        tl.mark("etcd member e1 SIGKILLed (2 of 3 left: quorum)")
        time.sleep(1.0)
        up = [ml.cluster_health(i).get("etcd") for i in range(2, nodes + 1)]
        tl.mark(f"nodes say etcd is {'/'.join(map(str, up))}")
        for k in range(2, 4):
            ml.kill_etcd(k)
        tl.mark("etcd members e2, e3 SIGKILLed (no etcd left)")
        tl.mark(
            "every node says etcd is down in /healthz",
            _wait(
                lambda: all(
                    ml.cluster_health(i).get("etcd") == "down" for i in range(2, nodes + 1)
                ),
                15,
                "etcd down in /healthz",
            ),
        )
        mark = time.monotonic()
        time.sleep(2.0)
        during = [r for lp in loops.values() for r in lp.results if r.start >= mark]
        served = sum(r.ok for r in during)
        tl.mark(f"while etcd is down: {served}/{len(during)} user requests OK")
        ml.start_etcd(None, wait=False)
        tl.mark("etcd started again (all 3 members, their data kept)")
        tl.mark(
            "every node caught up with etcd",
            _wait(
                lambda: all(ml.cluster_health(i).get("etcd") == "up" for i in range(2, nodes + 1)),
                30,
                "etcd up again",
            ),
        )
        for lp in loops.values():
            lp.stop()
        ok = served == len(during)
        _write(ml, out, loops, t0)
        w.write(f"\n  wrote {out}/multi-timeline.json and the logs in {out}/multi-logs/\n")
        if keep:
            ml.lab.detach()
            w.write(f"  lab kept ({ml.lab.name}); remove it with: hagate lab down\n")
        return 0 if ok else 1
    except LabError as exc:
        w.write(f"hagate lab demo: {exc}\n")
        return 2
    finally:
        for lp in loops.values():
            lp.stop()
        if not keep or not ok:
            ml.lab.teardown()


def _write(ml: MultiLab, out: Path, loops: dict[tuple[int, str], RequestLoop], t0: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {f"n{i}/{dev}": [r.as_dict(t0) for r in lp.results] for (i, dev), lp in loops.items()}
    (out / "multi-timeline.json").write_text(json.dumps({"requests": data}, indent=1))
    logs = out / "multi-logs"
    logs.mkdir(exist_ok=True)
    for path in ml.work.glob("*.log"):
        shutil.copy(path, logs / path.name)
