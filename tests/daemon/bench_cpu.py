"""CPU cost of 100 VRRP instances at advert_int 0.1 s: hagate against keepalived 2.2.7.

Run by hand as root (not collected by pytest):  .venv/bin/python tests/daemon/bench_cpu.py
A lab with a master node and a backup node; the master runs 100 VRRPv3 instances (1000
adverts/s), the backup receives them. Prints CPU seconds per minute for each side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hagate.lab import Lab, Node


def config(count: int, priority: int, state: str) -> str:
    out = []
    for i in range(1, count + 1):
        out.append(
            f"vrrp_instance VI_{i} {{\n  state {state}\n  interface eth0\n"
            f"  virtual_router_id {i}\n  priority {priority}\n  advert_int 0.1\n  version 3\n"
            f"  virtual_ipaddress {{\n    10.2.{i // 250}.{i % 250 + 1}/16\n  }}\n}}\n"
        )
    return "".join(out)


def cpu_seconds(node: Node) -> float:
    """utime + stime of every process in the node's namespace (and reaped children)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in node.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def measure(impl: str, count: int, seconds: float) -> tuple[float, float]:
    with Lab.create(prefix="hgtb", nodes={"m": "10.1.1.5/24", "b": "10.1.1.10/24"}) as lab:
        m, b = lab.node("m"), lab.node("b")
        # The master first: a backup started first would itself be master for 100
        # instances until the real one appears, and on a busy 2-core machine the burst of
        # lower-priority adverts and GARPs that follows can keep both sides flapping.
        for node, prio, state in ((m, 200, "MASTER"), (b, 100, "BACKUP")):
            text = config(count, prio, state)
            if impl == "hagate":
                lab.start_hagate(node, text, ["--log-level", "warning"])
            else:
                lab.start_keepalived(node, text)
            time.sleep(1.0)
        time.sleep(5.0)  # settle: elections and the garp_master_delay round are over
        m0, b0 = cpu_seconds(m), cpu_seconds(b)
        time.sleep(seconds)
        m1, b1 = cpu_seconds(m), cpu_seconds(b)
        per_min = 60.0 / seconds
        if impl == "hagate":
            _sanity(lab, m, b)
        return (m1 - m0) * per_min, (b1 - b0) * per_min


def _sanity(lab: Lab, m: Node, b: Node) -> None:
    """Check the load is real: every instance MASTER on m, ~10 adverts/s each reach b."""
    from hagate.daemon.status import query

    def adverts_in() -> int:
        snap = query(lab.node_dir(b) / "hagate")
        return sum(i["counters"]["adverts_in"] for i in snap["instances"])

    masters = sum(i["state"] == "MASTER" for i in query(lab.node_dir(m) / "hagate")["instances"])
    flaps = sum(
        i["counters"]["transitions"] for i in query(lab.node_dir(b) / "hagate")["instances"]
    )
    a0, t0 = adverts_in(), time.monotonic()
    time.sleep(2.0)
    rate = (adverts_in() - a0) / (time.monotonic() - t0)
    print(
        f"  (hagate: {masters} masters, backup receives {rate:.0f} adverts/s, {flaps} transitions)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    impls = ["hagate"] + (["keepalived"] if shutil.which("keepalived") else [])
    print(f"{args.instances} instances, advert_int 0.1 s, {args.seconds:g} s measured")
    print(f"{'':12} {'master CPU-s/min':>18} {'backup CPU-s/min':>18}")
    for impl in impls:
        master, backup = measure(impl, args.instances, args.seconds)
        print(f"{impl:12} {master:18.2f} {backup:18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
