#!/usr/bin/env python3
"""Fleet failover: how long until every device is back after the master crashes.

The seed's two-node cluster in network namespaces (hagate vrrp + hagate gateway on each
node), N idle agents spread over a few agent processes in device namespaces (each agent with
its own device certificate), users probing a sample of the devices through the VIP. For each
recipe (the seed's roles; the sticky recipe) one cluster goes through: SIGKILL of the master
(SIGSTOP, then SIGKILL of every process of the node), its return (the seed's node-1
preempts and every agent moves again; sticky: nothing moves), SIGTERM of the master. Each
row is timed from the signal (the return: from the VRRP daemon's start) on one clock:
VIP moved, 50/99/100 % of the agents reconnected, 99/100 % of the sampled devices
reachable, the new master gateway's CPU and handshakes/s during the storm.

Every configuration is run with the steady redial schedule (hagate.agent.redial, today's)
and, for comparison in the same run, with the previous back-off (``--schedule`` to choose).
``--standby off,on`` runs each configuration without and with warm standby connections
(``[tunnel] standby_endpoints`` on both gateways: the new master promotes the connections the
agents parked at it, no handshake in the failover; docs/fleet.md). The agents' idle CPU is
measured in each run too (liveness checking must not cost more).

Run as root:  .venv/bin/python bench/fleet.py [--quick] [--devices N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hagate.agent.redial import ScheduleKind
from hagate.lab import LabError, unavailable_reason
from hagate.lab.demo import configs
from hagate.lab.demo.configs import ClusterPlan
from hagate.lab.demo.fleet import FleetPlan, issue_fleet
from hagate.lab.demo.fleetrun import FleetRun
from hagate.lab.demo.topology import NODE1

COLUMNS = [
    ("recipe", "recipe", "{}"),
    ("event", "event", "{}"),
    ("schedule", "redial", "{}"),
    ("standby_label", "standby", "{}"),
    ("vip_moved_s", "VIP", "{:.2f}"),
    ("agents_moved", "moved", "{}"),
    ("agents_50_s", "50%", "{:.2f}"),
    ("agents_99_s", "99%", "{:.2f}"),
    ("agents_100_s", "100%", "{:.2f}"),
    ("reach_99_s", "reach99", "{:.2f}"),
    ("reach_100_s", "reach100", "{:.2f}"),
    ("handshakes_peak_per_s", "hs/s pk", "{:.0f}"),
    ("handshakes_mean_per_s", "hs/s avg", "{:.0f}"),
    ("gateway_cpu_pct", "gw CPU%", "{:.0f}"),
    ("agents_cpu_pct", "agents CPU%", "{:.0f}"),
    ("handshakes_full", "full", "{}"),
    ("handshakes_resumed", "resumed", "{}"),
    ("handshakes_parked", "parked", "{}"),
    ("promoted", "promoted", "{}"),
]


def fmt(row: dict[str, Any], key: str, spec: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    return spec.format(v)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    grid = [[h for _k, h, _f in COLUMNS]]
    grid += [[fmt(r, k, f) for k, _h, f in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    for j, line in enumerate(grid):
        print(
            "  "
            + "  ".join(c.rjust(w) if j else c.ljust(w) for c, w in zip(line, widths, strict=True))
        )
    for r in rows:
        if r["problems"]:
            what = f"{r['recipe']} {r['event']} {r['schedule']} {r.get('standby_label', '')}"
            print(f"  ! {what}: {'; '.join(r['problems'])}")


EVENTS = ("crash", "return", "sigterm")


def run_cluster(
    plan: ClusterPlan,
    fleet: FleetPlan,
    pki: Path,
    idle_s: float,
    events: tuple[str, ...] = EVENTS,
    logs: Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    run = FleetRun(plan, fleet, prefix="hgf", pki_from=pki)
    try:
        run.bring_up()
        agents_cpu, gw_cpu = run.idle_cpu(idle_s)
        idle = {
            "schedule": fleet.schedule.value,
            "standby": fleet.standby,
            "recipe": run.recipe,
            "connect_s": round(run.connect_s, 2),
            "agents_idle_cpu_pct": round(agents_cpu, 2),
            "gateway_idle_cpu_pct": round(gw_cpu, 2),
        }
        run.crash(NODE1)  # the others follow from here: always
        if "return" in events or "sigterm" in events:
            run.restore(NODE1)
        if not plan.sticky and "sigterm" in events:
            run.sigterm(NODE1)
        rows = []
        for change in run.changes:
            row = change.row()
            row["schedule"] = fleet.schedule.value
            row["standby_label"] = "on" if fleet.standby else "off"
            rows.append(row)
        return rows, idle
    finally:
        if logs is not None:  # the lab's logs and records (its tmpdir goes with close())
            sb = "-standby" if fleet.standby else ""
            dest = logs / f"{plan.advert_int:g}-{run.recipe}-{fleet.schedule.value}{sb}"
            shutil.copytree(run.cluster.lab.tmpdir, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("pki", "*.sock"))  # fmt: skip
        run.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="500 devices, one configuration")
    p.add_argument("--devices", type=int, help="fleet size (10,000; 500 with --quick)")
    p.add_argument("--advert-int", default=None, help="comma list: 1 (VRRPv2), 0.1 (VRRPv3)")
    p.add_argument("--schedule", default=None, help="comma list: steady,backoff")
    p.add_argument("--recipes", default="seed,sticky", help="comma list: seed,sticky")
    p.add_argument(
        "--standby",
        default="off",
        help="comma list: off (today's redial), on (warm standby connections): off,on compares",
    )
    p.add_argument("--sample", type=int, default=64, help="devices the users probe")
    p.add_argument(
        "--events",
        default=",".join(EVENTS),
        help="comma list: crash (always), return, sigterm (after the return): fewer is quicker",
    )
    p.add_argument(
        "--agents-nice",
        type=int,
        default=0,
        help="nice of the agent processes (e.g. 10: the gateway first, as on its own machine)",
    )
    p.add_argument("--logs", type=Path, help="keep each cluster's logs and records here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if reason := unavailable_reason():
        print(f"bench/fleet.py: {reason} (run as root)", file=sys.stderr)
        return 2
    n = args.devices or (500 if args.quick else 10_000)
    adverts = [float(x) for x in (args.advert_int or ("1" if args.quick else "1,0.1")).split(",")]
    schedules = [ScheduleKind(s) for s in (args.schedule or "steady,backoff").split(",")]
    standbys = [x.strip() for x in args.standby.split(",") if x.strip()]
    if set(standbys) - {"off", "on"} or not standbys:
        p.error("--standby: a comma list of off, on")
    recipes = args.recipes.split(",")
    events = tuple(e for e in args.events.split(",") if e)
    if unknown := set(events) - set(EVENTS):
        p.error(f"--events: unknown {', '.join(sorted(unknown))} (crash, return, sigterm)")
    log = sys.stderr if args.json else sys.stdout
    work = Path(tempfile.mkdtemp(prefix="hagate-fleet-"))
    results: list[dict[str, Any]] = []
    idles: list[dict[str, Any]] = []
    try:
        t = time.monotonic()
        pki = work / "pki"
        configs.make_pki(pki)
        issue_fleet(pki, FleetPlan(n))
        print(f"PKI: {n:,} device certificates in {time.monotonic() - t:.1f} s", file=log)
        for advert in adverts:
            version = 2 if advert >= 1 and advert == int(advert) else 3
            for recipe in recipes:
                for schedule, standby in [(x, y) for x in schedules for y in standbys]:
                    plan = ClusterPlan(advert, version, sticky=recipe == "sticky")
                    fleet = FleetPlan(
                        n,
                        sample=args.sample,
                        schedule=schedule,
                        nice=args.agents_nice,
                        standby=standby == "on",
                    )
                    t = time.monotonic()
                    what = f"v{version} {advert:g} s {recipe} {schedule} standby {standby}"
                    print(f"{what}: ...", file=log, flush=True)
                    try:
                        rows, idle = run_cluster(
                            plan, fleet, pki, 3.0 if args.quick else 10.0, events, args.logs
                        )
                    except LabError as exc:
                        print(f"  FAILED: {exc}", file=log)
                        results.append({"advert_int": advert, "version": version,
                                        "recipe": recipe, "schedule": schedule.value,
                                        "standby": standby, "error": str(exc)})  # fmt: skip
                        continue
                    for row in rows:
                        row.update(advert_int=advert, version=version, devices=n)
                        print(f"  row {json.dumps(row)}", file=log, flush=True)  # kept if cut
                    idle.update(advert_int=advert, version=version, devices=n)
                    results += rows
                    idles.append(idle)
                    print(f"  done in {time.monotonic() - t:.0f} s", file=log, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"devices": n, "rows": results, "idle": idles,
              "note": "2-core machine shared with other engineers (loaded)"}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for advert in adverts:
            rows = [r for r in results if r.get("advert_int") == advert and "error" not in r]
            version = 2 if advert >= 1 else 3
            title = f"{n:,} devices, VRRPv{version} advert_int {advert:g} s"
            print_table(f"{title} (s from the signal; return: from the daemon's start)", rows)
        print("\nidle (all agents connected): CPU % of the agent processes, of the gateway")
        for i in idles:
            sb = "standby" if i["standby"] else "       "
            print(f"  v{i['version']} {i['advert_int']:g} s {i['recipe']:6} {i['schedule']:7} {sb}"
                  f" connect {i['connect_s']:6.1f} s  agents {i['agents_idle_cpu_pct']:6.1f} %"
                  f"  gateway {i['gateway_idle_cpu_pct']:6.1f} %")  # fmt: skip
        print("(machine loaded by other engineers: compare rows of the same run)")
    bad = [r for r in results if "error" in r or r.get("problems")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
