"""`hagate simulate` speed: simulated seconds per wall second for 2, 10 and 100 instances.

    python bench/simulate.py [--quick] [--duration S]

Each case is two hosts (real keepalived.conf files, written to a temp dir) sharing one link,
with N/2 VRRP instances each (VRIDs 1..N/2, advert_int 1, unicast off: every advert reaches
every instance, as on one L2 segment). The scenario crashes and restarts a host, partitions
the link and loses 20% of the adverts for a while. The whole path is timed: state machines,
codec and receive checks on every delivery, timeline and verdicts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hagate.simulate.cluster import load_cluster
from hagate.simulate.runner import simulate
from hagate.simulate.scenario import parse
from hagate.simulate.verdicts import verdicts

CASES = (2, 10, 100)


def write_configs(directory: Path, instances: int) -> list[str]:
    files = []
    for host, (prio, octet) in {"a": (200, 5), "b": (100, 10)}.items():
        blocks = []
        for vrid in range(1, instances // 2 + 1):
            blocks.append(
                f"""vrrp_instance VI_{vrid} {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority {prio}
    advert_int 1
    mcast_src_ip 10.1.{vrid}.{octet}
    virtual_ipaddress {{
        10.1.{vrid}.100/24
    }}
}}
"""
            )
        path = directory / f"{host}.conf"
        path.write_text("".join(blocks))
        files.append(str(path))
    return files


def scenario_text(duration: float) -> str:
    d = duration
    return (
        f"crash a at {d * 0.1:g}s; restart a at {d * 0.2:g}s; partition at {d * 0.5:g}s "
        f"for {d * 0.05:g}s; loss 20% from {d * 0.7:g}s to {d * 0.8:g}s; end at {d:g}s"
    )


def measure(instances: int, duration: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="hagate-bench-") as tmp:
        cluster = load_cluster(write_configs(Path(tmp), instances))
    names = {h.name: h.items() for h in cluster.hosts}
    scenario = parse(scenario_text(duration), names)
    began = time.perf_counter()
    result = simulate(cluster, scenario)
    verdicts(result)
    wall = time.perf_counter() - began
    return wall, len(result.link.timeline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 simulated s")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    args = parser.parse_args(argv)
    duration = 60.0 if args.quick else args.duration
    print(f"hagate simulate: {duration:g} simulated seconds per case, 2 hosts on one link")
    for n in CASES:
        wall, entries = measure(n, duration)
        rate = duration / wall
        print(
            f"  {n:>3} instances ({n // 2} VRID(s) x 2 hosts): {wall:7.3f} s wall, "
            f"{entries} timeline entries, {rate:,.0f} simulated s / wall s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
