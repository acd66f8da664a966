#!/usr/bin/env python3
"""Scale-out: N active gateway nodes on etcd, many idle agents, a node crash, the peer hop.

Three gateway nodes in network namespaces (hagate vrrp from the generated keepalived.conf +
hagate gateway with [cluster]), a 3-member etcd, ``--agents`` idle agents (each with its own
device certificate, run by ``python -m hagate.agent.fleet`` processes in fleet namespaces)
spread evenly over the three VIPs. One run reports:

* agents per node, and each gateway's RSS per agent (RSS with the agents minus RSS before);
* user request latency entering at the device's node (direct) vs at another node (one peer
  hop), interleaved request by request so both see the same load; the ratio;
* after SIGKILL of node 1: registry writes/s at its VIPs' new holders during the reconnect
  storm, and the time until 99 % and 100 % of node 1's devices are routed to their new node
  from every surviving node (each node's registry), plus a probed sample reachable from
  every surviving node; when node 1's lease expired;
* CPU (cores) and RSS of the gateways, etcd and the agent processes, per phase.

Each node is master of ``--vips-per-node`` VIPs (default: the fewest that keep a survivor
below this machine's file descriptor limit after the crash, see vips_per_node_for); the
gateways ping every ``--heartbeat-ms`` (default scaled to the fleet, see heartbeat_for).

The machine is shared and loaded: read ratios, not absolute figures.

Run as root:  .venv/bin/python bench/scale.py [--agents 3000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hagate.lab import LabError, unavailable_reason
from hagate.lab.multinode import DOMAIN, TUNNEL_PORT, MultiLab, Plan

PER_PROCESS = 2500
WEB_PORT = 8080
CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def heartbeat_for(agents: int) -> int:
    """The gateways' ping interval, ms: about 3,000 pings/s over all agents (at most 10 s).

    At 300 ms the pings of 10,000 idle agents took more than a core of this machine
    (docs/fleet.md); 30,000 agents at 1 s would be 30,000 pings/s, the core the bring-up and
    the storm need. A crash in the lab is seen by the agents at once anyway (the kernel of
    the dead node's namespace resets their connections), not through a missed ping.
    """
    return max(1000, min(10_000, agents // 3))


class Usage:
    """CPU seconds and RSS per component (gateways, etcd, agent fleets), phase by phase."""

    def __init__(self, ml: MultiLab, fleets: list[int]) -> None:
        self.groups = {
            "gateways": [p.pid for p in ml.gateways.values()],
            "etcd": [p.pid for p in ml.etcd_procs.values()],
            "fleets": fleets,
        }
        self._last: dict[int, float] = {}
        self.t = time.monotonic()
        self.cpu = self._cpu()

    def _cpu(self) -> dict[str, float]:
        """Per group; a process that died (node 1) keeps the CPU it had used."""
        for pids in self.groups.values():
            for pid in pids:
                self._last[pid] = cpu_s(pid) or self._last.get(pid, 0.0)
        return {g: sum(self._last[pid] for pid in pids) for g, pids in self.groups.items()}

    def lap(self) -> dict[str, Any]:
        """Cores used by each group since the last lap, their RSS now, the load average."""
        now, cpu = time.monotonic(), self._cpu()
        wall = max(1e-3, now - self.t)
        out: dict[str, Any] = {
            "wall_s": round(wall, 1),
            "cores": {g: round((cpu[g] - self.cpu[g]) / wall, 2) for g in cpu},
            "rss_mib": {g: round(sum(map(rss_kib, p)) / 1024) for g, p in self.groups.items()},
            "loadavg": Path("/proc/loadavg").read_text().split()[0],
        }
        self.t, self.cpu = now, cpu
        return out


def prefix(k: int) -> str:
    """Devices of the k-th VIP (0-based, the cluster description's order) are <prefix>N."""
    return "abcdefghijklmnopqrstuvwxyz"[k]


def node_prefixes(plan: Plan, i: int) -> list[str]:
    """The device prefixes whose VIP node ``i`` is master of."""
    return [prefix(k) for k, vip in enumerate(plan.vips()) if plan.owner(vip) == i]


def vips_per_node_for(agents: int, nodes: int = 3) -> int:
    """The fewest VIPs per node that keep a node under its file descriptor limit after a
    crash: with k VIPs per node a survivor takes 1/k of the dead node's sessions (one
    descriptor each) on top of its own. This machine's hard RLIMIT_NOFILE is 20,000 and no
    process here may raise it (no CAP_SYS_RESOURCE): one VIP per node ends at ~19,980 sessions
    on the dead node's successor, EMFILE, at 30,000 agents on 3 nodes."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 1
    per = agents / nodes
    for k in range(1, 5):
        if per * (1 + 1 / k) + 1000 <= hard:
            return k
    return 4


def issue_devices(ml: MultiLab, agents: int) -> list[tuple[str, str, int, int]]:
    """Device certificates, and the shares of the agent processes: (VIP, prefix, first,
    count), ``PER_PROCESS`` agents each at most, the agents spread evenly over the VIPs."""
    from hagate.pki.ca import Role, issue

    vips = ml.plan.vips()
    per_vip = [agents // len(vips) + (1 if k < agents % len(vips) else 0) for k in range(len(vips))]
    shares: list[tuple[str, str, int, int]] = []
    for k, n in enumerate(per_vip):
        for first in range(0, n, PER_PROCESS):
            shares.append((vips[k], prefix(k), first, min(PER_PROCESS, n - first)))
    t0 = time.monotonic()
    for _i, pre, first, count in shares:
        for k in range(first, first + count):
            issue(ml.pki, Role.DEVICE, f"{pre}{k}", days=2)
    print(f"  {agents} device certificates issued in {time.monotonic() - t0:.1f} s", flush=True)
    return shares


def start_fleets(ml: MultiLab, shares: list[tuple[str, str, int, int]]) -> list[int]:
    """Agent processes (their pids), one per share; devices of VIP i are <prefix>N, so the
    bench knows each device's node from its name."""
    www = ml.work / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("fleet device\n")
    for k in range(ml.plan.fleets):
        node = ml.node(f"f{k}")
        argv = [sys.executable, "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1"]
        with open(ml.work / f"fweb{k}.log", "ab") as log:
            node.spawn([*argv, "--directory", str(www)], stdout=log, stderr=subprocess.STDOUT)
        ml.wait_port(node, WEB_PORT, 10.0)
    pids = []
    for n, (vip, pre, first, count) in enumerate(shares):
        node = ml.node(f"f{n % ml.plan.fleets}")
        argv = [sys.executable, "-m", "hagate.agent.fleet", "--pki", str(ml.pki)]
        argv += ["--gateway", f"{vip}:{TUNNEL_PORT}", "--server-name", DOMAIN]
        argv += ["--prefix", pre, "--first", str(first), "--count", str(count)]
        argv += ["--target", f"127.0.0.1:{WEB_PORT}", "--ramp-ms", "1"]
        with open(ml.work / f"fleet{n}.log", "ab") as log:
            pids.append(node.spawn(argv, stdout=log, stderr=subprocess.STDOUT).pid)
    return pids


class StormWatch:
    """Polls the survivors' registries every 0.1 s from a thread of its own (the probes of
    the main loop take up to a second each): when 99 % and 100 % of node 1's devices are
    routed to a survivor as n2 and as n3 see it, the survivors' registry writes (summed: with
    several VIPs per node, each survivor takes some of n1's devices), when n1's lease went.
    """

    def __init__(self, ml: MultiLab, t0: float, lost: int, base: int, writes0: int) -> None:
        self.ml, self.t0, self.lost, self.base, self.writes0 = ml, t0, lost, base, writes0
        self.reach: dict[str, dict[int, float]] = {"n2": {}, "n3": {}}
        self.samples: list[tuple[float, int]] = []
        self.expired_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storm watch", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return all(100 in r for r in self.reach.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            writes: list[int] = []
            for name, i in (("n2", 2), ("n3", 3)):
                h = self.ml.cluster_health(i)
                now = round(time.monotonic() - self.t0, 2)
                if not h:
                    continue  # /healthz too slow to answer this time
                writes.append(int(h.get("registry_writes", 0)))
                nodes = h.get("nodes")
                if self.expired_at is None and isinstance(nodes, list) and "n1" not in nodes:
                    self.expired_at = now
                per = h.get("devices_per_node")
                per = per if isinstance(per, dict) else {}
                moved = per.get("n2", 0) + per.get("n3", 0) - self.base
                for share in (99, 100):
                    if share not in self.reach[name] and moved >= self.lost * share / 100:
                        self.reach[name][share] = now
            if len(writes) == 2:
                self.samples.append((now, sum(writes) - self.writes0))


def per_node(ml: MultiLab, i: int) -> dict[str, int]:
    value = ml.cluster_health(i).get("devices_per_node", {})
    return value if isinstance(value, dict) else {}


def latency(ml: MultiLab, device: str, home: int, other: int, n: int) -> dict[str, float]:
    direct: list[float] = []
    hop: list[float] = []
    failed = 0
    for _ in range(n):
        for entry, out in ((home, direct), (other, hop)):
            t0 = time.perf_counter()
            status, _ = ml.get(entry, device, "/", 2.0)
            if status == 200:
                out.append((time.perf_counter() - t0) * 1000)
            else:
                failed += 1
    if len(direct) < 2 or len(hop) < 2:
        raise LabError(f"latency: {failed} of {2 * n} requests failed")
    d, h = statistics.median(direct), statistics.median(hop)
    q = statistics.quantiles
    return {
        "direct_ms_p50": round(d, 2),
        "hop_ms_p50": round(h, 2),
        "direct_ms_p90": round(q(direct, n=10)[-1], 2),
        "hop_ms_p90": round(q(hop, n=10)[-1], 2),
        "added_ms_p50": round(h - d, 2),
        "ratio_p50": round(h / d, 2),
        "failed": failed,
    }


def _save_logs(ml: MultiLab, logs: Path | None) -> None:
    if logs is None:
        return
    logs.mkdir(parents=True, exist_ok=True)
    for path in ml.work.glob("*.log"):
        (logs / path.name).write_bytes(path.read_bytes()[-200_000:])


def _survivors(ml: MultiLab, key: str) -> int:
    """A counter of /healthz summed over n2 and n3."""
    return sum(int(ml.cluster_health(i).get(key, 0)) for i in (2, 3))


def _etcd_states(ml: MultiLab) -> str:
    return "/".join(str(ml.cluster_health(i).get("etcd", "?")) for i in (1, 2, 3))


def _health_summary(ml: MultiLab, nodes: tuple[int, ...]) -> dict[str, Any]:
    """What says whether a node kept its lease: outages, keep-alive failures, unwritten."""
    keys = ("etcd", "outages", "lease_keepalive_failures", "unwritten", "registry_writes")
    out: dict[str, Any] = {}
    for i in nodes:
        h = ml.cluster_health(i)
        out[f"n{i}"] = {k: h.get(k) for k in keys}
    return out


def run(
    agents: int,
    latency_requests: int,
    attach_timeout: float,
    logs: Path | None,
    heartbeat_ms: int = 0,
    vips_per_node: int = 0,
) -> dict[str, Any]:
    fleets = max(1, min(12, -(-agents // PER_PROCESS)))
    heartbeat = heartbeat_ms or heartbeat_for(agents)
    per_node_vips = vips_per_node or vips_per_node_for(agents)
    plan = Plan(
        3,
        3,
        lease_ttl=10,
        heartbeat_ms=heartbeat,
        dead_after_ms=3 * heartbeat,
        fleets=fleets,
        etcd_timeout=2.0,
        etcd_timers=(250, 2500),
        vips_per_node=per_node_vips,
    )
    out: dict[str, Any] = {
        "agents": agents,
        "nodes": 3,
        "etcd_members": 3,
        "etcd_client": "TLS (client certificates)",
        "heartbeat_ms": heartbeat,
        "vips_per_node": per_node_vips,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[0],
    }
    with MultiLab.create(plan, prefix="hgs") as ml:
        ml.start_etcd()
        ml.start_nodes()
        time.sleep(1.0)
        rss0 = {i: rss_kib(ml.gateways[i].pid) for i in (1, 2, 3)}
        shares = issue_devices(ml, agents)
        t0 = time.monotonic()
        usage = Usage(ml, start_fleets(ml, shares))
        out["fleet_processes"] = len(usage.groups["fleets"])
        last = 0.0
        while True:
            attached = sum(per_node(ml, 1).values())
            waited = time.monotonic() - t0
            if attached >= agents or waited > attach_timeout:
                break
            if waited - last >= 10:
                last = waited
                lap = usage.lap()
                print(
                    f"  {waited:4.0f} s: {attached}/{agents} attached; cores {lap['cores']}, "
                    f"RSS {lap['rss_mib']} MiB, load {lap['loadavg']}, "
                    f"etcd {_etcd_states(ml)}",
                    flush=True,
                )
            time.sleep(0.5)
        out["attach_s"] = round(time.monotonic() - t0, 1)
        out["attached"] = attached
        out["nodes_health"] = _health_summary(ml, (1, 2, 3))
        if attached < agents * 0.99:
            _save_logs(ml, logs)
            raise LabError(
                f"only {attached}/{agents} agents attached in {attach_timeout:g} s; "
                f"{json.dumps(out['nodes_health'])}"
            )
        usage = Usage(ml, usage.groups["fleets"])
        time.sleep(2.0)
        counts = per_node(ml, 1)
        out["agents_per_node"] = counts
        out["rss_per_agent_kib"] = {
            f"n{i}": round(
                (rss_kib(ml.gateways[i].pid) - rss0[i]) / max(1, counts.get(f"n{i}", 0)), 1
            )
            for i in (1, 2, 3)
        }
        out["rss_idle_mib"] = {f"n{i}": round(rss0[i] / 1024, 1) for i in (1, 2, 3)}
        out["idle"] = usage.lap()  # 2 s after the last attach: what idle agents cost
        print(f"  attached: {counts} in {out['attach_s']} s; idle {out['idle']}", flush=True)
        out["latency"] = latency(ml, "a0", 1, 2, latency_requests)
        print(f"  latency: {out['latency']}", flush=True)

        # ---- the crash of node 1 and its reconnect storm
        lost = counts.get("n1", 0)
        base = counts.get("n2", 0) + counts.get("n3", 0)
        writes0, txns0 = _survivors(ml, "registry_writes"), _survivors(ml, "registry_txns")
        usage = Usage(ml, usage.groups["fleets"])
        t_crash = time.monotonic()
        watch = StormWatch(ml, t_crash, lost, base, writes0)
        ml.crash_node(1)
        deadline = t_crash + 60 + agents / 100
        pres = node_prefixes(plan, 1)
        each, per = lost // len(pres), 20 // len(pres)  # 20 sampled devices of n1 in all
        probe = [f"{p}{k}" for p in pres for k in range(0, each, max(1, each // per))][:20]
        reached: dict[int, set[str]] = {2: set(), 3: set()}
        while time.monotonic() < deadline:
            for i in (2, 3):
                for dev in probe:
                    if dev not in reached[i] and ml.get(i, dev, "/", 0.5)[0] == 200:
                        reached[i].add(dev)
            if watch.done() and all(len(s) == len(probe) for s in reached.values()):
                break
            time.sleep(0.2)
        sample_done = time.monotonic() - t_crash
        storm_usage = usage.lap()  # crash to every sampled device reachable
        while not watch.expired_at and time.monotonic() < deadline:
            time.sleep(0.2)  # until n1's lease went (its records deleted by etcd)
        watch.stop()
        reach, samples = watch.reach, watch.samples
        out["storm"] = {
            "devices_of_n1": lost,
            "routed_99_s": {k: v.get(99) for k, v in reach.items()},
            "routed_100_s": {k: v.get(100) for k, v in reach.items()},
            "sample_reachable": {f"n{i}": f"{len(s)}/{len(probe)}" for i, s in reached.items()},
            "sample_done_s": round(sample_done, 2),
            "n1_lease_expired_s": watch.expired_at,
            "writes_per_s_peak": _peak(samples),
            "writes_total": samples[-1][1] if samples else 0,
            "etcd_txns": _survivors(ml, "registry_txns") - txns0,
            "usage": storm_usage,
        }
        out["nodes_health_end"] = _health_summary(ml, (2, 3))
        print(f"  storm: {out['storm']}", flush=True)
        _save_logs(ml, logs)
    return out


def etcd_writes(n: int) -> dict[str, float]:
    """Registry writes/s a single loopback etcd takes: single puts (64 in flight, the old
    writer) against 128-key transactions (the registry's writer), in one run."""
    import asyncio
    import tempfile

    from hagate.cluster.etcd import Etcd
    from hagate.lab import etcd as etcdproc

    value = b'{"sid":"0123456789abcdef","services":[{"name":"web","kind":"http"}]}'

    async def measure(port: int) -> dict[str, float]:
        db = Etcd([("127.0.0.1", port)], 5.0)
        lease = await db.grant(60)
        keys = [f"/bench/devices/d{i}/n1".encode() for i in range(n)]
        t0 = time.perf_counter()
        for k in range(0, n, 64):
            await asyncio.gather(*(db.put(key, value, lease) for key in keys[k : k + 64]))
        single = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for k in range(0, n, 128):
            await db.write_many([(key, value) for key in keys[k : k + 128]], [], lease)
        txn = n / (time.perf_counter() - t0)
        await db.revoke(lease)
        await db.close()
        return {"single_puts_per_s": round(single), "txn_puts_per_s": round(txn)}

    with tempfile.TemporaryDirectory(prefix="hagate-etcd-") as tmp:
        client, peer = etcdproc.free_loopback_ports(2)
        member = etcdproc.Member("bench", "127.0.0.1", client, peer)
        argv = etcdproc.argv(member, [member], Path(tmp) / "data", "bench", 100, 1000)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            etcdproc.wait_ready("127.0.0.1", client)
            result = asyncio.run(measure(client))
        finally:
            proc.kill()
            proc.wait(5)
    result["ratio"] = round(result["txn_puts_per_s"] / max(1, result["single_puts_per_s"]), 1)
    return result


def etcd_fanout(keys: int, watchers: int) -> dict[str, Any]:
    """A reconnect storm's registry load at cluster scale, on one TLS etcd on loopback:
    ``watchers`` clients watch the registry prefix (every node of a cluster does), one writes
    ``keys`` device records in 128-key transactions under one lease (the survivors' writes
    after a crash), then the lease is revoked (the dead node's records going at once, as its
    expiry does). Measured: each phase's time until every watcher has every event, and the
    CPU etcd spent (its /proc stat). The watchers' own decoding runs in this one process, so
    the delivery times are an upper bound; etcd's CPU is the figure to scale."""
    import asyncio
    import tempfile

    from hagate.cluster.config import EtcdSecurity
    from hagate.cluster.etcd import MAX_TXN_OPS, Etcd, WatchEvent, WatchLost
    from hagate.lab import etcd as etcdproc
    from hagate.pki.ca import Role, init_ca, issue

    value = b'{"sid":"0123456789abcdef","services":[{"name":"web","kind":"http"}]}'
    root = b"/fanout/devices/"

    async def measure(port: int, security: EtcdSecurity, pid: int) -> dict[str, Any]:
        db = Etcd([("127.0.0.1", port)], 10.0, security)
        clients = [Etcd([("127.0.0.1", port)], 10.0, security) for _ in range(watchers)]
        queues: list[asyncio.Queue[WatchEvent | WatchLost]] = [asyncio.Queue() for _ in clients]
        _, rev = await db.get_prefix(root)
        cancels = [await c.watch(root, rev + 1, q) for c, q in zip(clients, queues, strict=True)]
        seen = [0] * watchers

        async def drain(k: int, want: int) -> None:
            while seen[k] < want:
                ev = await queues[k].get()
                if isinstance(ev, WatchLost):
                    raise LabError(f"watch {k} lost: {ev.reason}")
                seen[k] += 1

        out: dict[str, Any] = {"keys": keys, "watchers": watchers, "etcd_client": "TLS"}
        lease = await db.grant(600)
        names = [root + f"d{i}/n1".encode() for i in range(keys)]
        for phase, want in (("puts", keys), ("revoke", 2 * keys)):
            cpu0, t0 = cpu_s(pid), time.perf_counter()
            waiting = asyncio.gather(*(drain(k, want) for k in range(watchers)))
            if phase == "puts":
                for k in range(0, keys, MAX_TXN_OPS):
                    batch = [(key, value) for key in names[k : k + MAX_TXN_OPS]]
                    await db.write_many(batch, [], lease)
                written = time.perf_counter() - t0
            else:
                await db.revoke(lease)
                written = time.perf_counter() - t0
            await waiting
            wall = time.perf_counter() - t0
            out[phase] = {
                "written_s": round(written, 2),
                "all_watchers_had_all_s": round(wall, 2),
                "etcd_cpu_s": round(cpu_s(pid) - cpu0, 2),
                "etcd_cpu_us_per_event_delivered": round(
                    (cpu_s(pid) - cpu0) / (keys * watchers) * 1e6, 2
                ),
            }
        for cancel in cancels:
            await cancel()
        for c in [db, *clients]:
            await c.close()
        return out

    with tempfile.TemporaryDirectory(prefix="hagate-etcd-") as tmp:
        pki = Path(tmp) / "pki"
        init_ca(pki, "fanout CA", days=1)
        issue(pki, Role.SERVER, "etcd", days=1, ips=["127.0.0.1"])
        issue(pki, Role.NODE, "n1", days=1, ips=["127.0.0.1"])
        server = pki / "issued" / "server" / "etcd"
        node = pki / "issued" / "node" / "n1"
        tls = etcdproc.ServerTLS(server / "cert.pem", server / "key.pem", pki / "ca.crt")
        client, peer = etcdproc.free_loopback_ports(2)
        member = etcdproc.Member("fanout", "127.0.0.1", client, peer, tls=tls)
        argv = etcdproc.argv(member, [member], Path(tmp) / "data", "fanout", 100, 1000)
        security = EtcdSecurity(
            tls=True, ca=pki / "ca.crt", cert=node / "cert.pem", key=node / "key.pem"
        )
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            etcdproc.wait_ready("127.0.0.1", client)
            return asyncio.run(measure(client, security, proc.pid))
        finally:
            proc.kill()
            proc.wait(5)


def _peak(samples: list[tuple[float, int]], window: float = 1.0) -> float:
    best = 0.0
    for k, (t, w) in enumerate(samples):
        for t2, w2 in samples[k + 1 :]:
            if t2 - t >= window:
                best = max(best, (w2 - w) / (t2 - t))
                break
    return round(best, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", type=int, default=3000)
    p.add_argument("--latency-requests", type=int, default=200)
    p.add_argument("--attach-timeout", type=float, default=900.0, help="s (default 900)")
    p.add_argument(
        "--heartbeat-ms",
        type=int,
        default=0,
        help="the gateways' ping interval (default: agents/3 ms, 1,000 to 10,000)",
    )
    p.add_argument(
        "--vips-per-node",
        type=int,
        default=0,
        help="VIPs each node is master of (default: the fewest that keep the dead node's\n"
        "successors under the file descriptor limit: 1 up to ~28,000 agents here)",
    )
    p.add_argument("--logs", type=Path, help="copy the lab's logs here")
    p.add_argument(
        "--etcd-writes", type=int, metavar="N", help="only: N registry writes to a loopback etcd"
    )
    p.add_argument(
        "--etcd-fanout",
        type=int,
        metavar="KEYS",
        help="only: KEYS registry writes and a lease revoke, watched by --watchers clients",
    )
    p.add_argument("--watchers", type=int, default=30, help="for --etcd-fanout (default 30)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.etcd_fanout:
        print(json.dumps(etcd_fanout(args.etcd_fanout, args.watchers), indent=2))
        return 0
    if args.etcd_writes:
        print(json.dumps(etcd_writes(args.etcd_writes)))
        return 0
    reason = unavailable_reason()
    if reason:
        print(f"bench/scale: {reason}", file=sys.stderr)
        return 2
    try:
        result = run(
            args.agents,
            args.latency_requests,
            args.attach_timeout,
            args.logs,
            args.heartbeat_ms,
            args.vips_per_node,
        )
    except LabError as exc:
        print(f"bench/scale: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


def _table(r: dict[str, Any]) -> str:
    lat, st = r["latency"], r["storm"]
    return "\n".join(
        [
            f"{r['agents']} idle agents on {r['nodes']} nodes, {r['etcd_members']}-member etcd "
            f"over {r['etcd_client']}, {r['vips_per_node']} VIP(s) per node, heartbeat "
            f"{r['heartbeat_ms']} ms, "
            f"{r['fleet_processes']} agent processes (machine shared: load average "
            f"{r['loadavg_start']} at start; compare ratios)",
            f"  attached in {r['attach_s']} s: {r['agents_per_node']}",
            f"  gateway RSS idle {r['rss_idle_mib']} MiB; per agent {r['rss_per_agent_kib']} KiB",
            f"  request latency p50 direct {lat['direct_ms_p50']} ms, through a peer "
            f"{lat['hop_ms_p50']} ms: +{lat['added_ms_p50']} ms, x{lat['ratio_p50']} "
            f"(p90 {lat['direct_ms_p90']} / {lat['hop_ms_p90']} ms)",
            f"  node 1 SIGKILLed with {st['devices_of_n1']} devices: routed again at 99 % "
            f"{st['routed_99_s']} s, 100 % {st['routed_100_s']} s; sampled devices reachable "
            f"{st['sample_reachable']} after {st['sample_done_s']} s; n1's lease gone "
            f"after {st['n1_lease_expired_s']} s",
            f"  registry writes at the survivors (the VIPs' new holders): peak "
            f"{st['writes_per_s_peak']}/s, "
            f"{st['writes_total']} in all, in {st['etcd_txns']} etcd transactions",
            f"  idle: cores {r['idle']['cores']}, RSS {r['idle']['rss_mib']} MiB",
            f"  storm ({st['usage']['wall_s']} s): cores {st['usage']['cores']}, "
            f"RSS {st['usage']['rss_mib']} MiB, load {st['usage']['loadavg']}",
            f"  leases: {r['nodes_health_end']}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
