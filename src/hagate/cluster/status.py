"""`hagate cluster status`: nodes, devices per node, VIPs and who holds them, etcd health.

Read-only, from etcd itself (every endpoint asked separately, so a lost member shows), plus
the cluster description when given: which node holds each VIP follows from the priorities and
which nodes are alive in the registry (a node is alive while its lease is).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hagate.cluster.config import EtcdSecurity
from hagate.cluster.etcd import Etcd, EtcdError
from hagate.cluster.layout import Layout
from hagate.cluster.routes import ROOT, RouteTable


async def gather(
    endpoints: list[tuple[str, int]],
    layout: Layout | None,
    timeout: float = 2.0,
    security: EtcdSecurity | None = None,
) -> dict[str, Any]:
    async def member(ep: tuple[str, int]) -> dict[str, Any]:
        client = Etcd([ep], timeout, security)
        try:
            st = await client.status()
            return {"endpoint": f"{ep[0]}:{ep[1]}", "ok": True, **st}
        except EtcdError as exc:
            return {"endpoint": f"{ep[0]}:{ep[1]}", "ok": False, "error": str(exc)}
        finally:
            await client.close()

    members = await asyncio.gather(*(member(ep) for ep in endpoints))
    table = RouteTable()
    error = ""
    client = Etcd(endpoints, timeout, security)
    try:
        for _ in endpoints:
            try:
                kvs, revision = await client.get_prefix(ROOT.encode())
                table.reset([(kv.key, kv.value, kv.mod_revision) for kv in kvs], revision)
                error = ""
                break
            except EtcdError as exc:
                error = str(exc)
                await client.failover()
    finally:
        await client.close()
    per_node = table.devices_per_node()
    out: dict[str, Any] = {
        "etcd": {
            "members": members,
            "healthy": sum(1 for m in members if m["ok"]),
            "readable": not error,
            "error": error,
            "revision": table.revision,
        },
        "nodes": [
            {
                "name": n.name,
                "peer": n.peer,
                "devices": per_node.get(n.name, 0),
                "addresses": list(n.addresses),
            }
            for n in sorted(table.nodes.values(), key=lambda n: n.name)
        ],
        "devices": sum(per_node.values()),
    }
    if layout is not None:
        alive = set(table.nodes)
        out["vips"] = [
            {
                "vip": inst.vip,
                "owner": layout.nodes[inst.owner].name,
                "master": layout.master_of(j, alive) if not error else None,
                "held_by": sorted(n.name for n in table.nodes.values() if inst.vip in n.addresses),
            }
            for j, inst in enumerate(layout.instances())
        ]
    return out


def render(report: dict[str, Any]) -> str:
    etcd = report["etcd"]
    lines = [
        f"etcd: {etcd['healthy']}/{len(etcd['members'])} members answer"
        + (f", revision {etcd['revision']}" if etcd["readable"] else f"; {etcd['error']}")
    ]
    for m in etcd["members"]:
        state = f"ok, version {m['version']}, leader {m['leader']:x}" if m["ok"] else m["error"]
        lines.append(f"  {m['endpoint']:<22} {state}")
    lines.append(f"nodes: {len(report['nodes'])}, devices: {report['devices']}")
    for n in report["nodes"]:
        lines.append(f"  {n['name']:<16} peer {n['peer']:<22} {n['devices']:>8} devices")
    for v in report.get("vips", []):
        want = v["master"] or ("nobody alive" if etcd["readable"] else "unknown (no etcd)")
        held = ", ".join(v["held_by"]) or "nobody"
        split = "  SPLIT BRAIN" if len(v["held_by"]) > 1 else ""
        lines.append(
            f"  VIP {v['vip']:<16} owner {v['owner']:<12} held by {held:<12} "
            f"(by priorities: {want}){split}"
        )
    return "\n".join(lines)
