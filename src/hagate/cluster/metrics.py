"""The cluster's figures in the gateway's /metrics (Prometheus text), beside its own.

Read from the admin thread while the event loop writes them: every figure is an int, a dict
replaced whole (the route table's per-node counts) or a Counter copied at once, so a scrape
sees one consistent value of each and never iterates a dict being resized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hagate.gateway.metrics import label

if TYPE_CHECKING:
    from hagate.cluster.node import ClusterNode

# PeerServer counts that are refusals of an incoming stream (the rest: served)
IN_FAILED = ("tls_failed", "not_a_node", "bad_request")
OUT_FAILED = ("refused", "unreachable")


def render(node: ClusterNode) -> str:
    reg = node.registry
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, int]]) -> None:
        lines.append(f"# HELP hagate_cluster_{name} {help_}")
        lines.append(f"# TYPE hagate_cluster_{name} {kind}")
        lines.extend(f"hagate_cluster_{name}{labels} {value}" for labels, value in samples)

    state = reg.state.value
    metric(
        "etcd_up",
        "gauge",
        "1 while this node's registry is in touch with etcd.",
        [("", int(state == "up"))],
    )
    metric(
        "etcd_outages_total",
        "counter",
        "Times etcd went from up to down for this node.",
        [("", reg.outages)],
    )
    metric(
        "registry_writes_total",
        "counter",
        "Device keys put or deleted in etcd.",
        [("", reg.writes)],
    )
    metric(
        "registry_transactions_total",
        "counter",
        "etcd transactions those writes took.",
        [("", reg.transactions)],
    )
    metric(
        "registry_write_errors_total",
        "counter",
        "Device key writes that failed (retried).",
        [("", reg.write_errors)],
    )
    metric("registry_unwritten", "gauge", "Local changes not yet in etcd.", [("", reg.pending)])
    done, failed = reg.keepalives
    metric(
        "lease_keepalives_total",
        "counter",
        "Lease refreshes by the keeper thread.",
        [('{result="ok"}', done), ('{result="failed"}', failed)],
    )
    per_node = reg.table.devices_per_node()
    metric(
        "devices",
        "gauge",
        "Devices by the node that holds them, as this node sees it.",
        [(f'{{node="{label(n)}"}}', c) for n, c in sorted(per_node.items())],
    )
    routes = sum(c for n, c in per_node.items() if n != reg.node)
    metric(
        "routes_known", "gauge", "Devices this node would splice to another node.", [("", routes)]
    )
    metric(
        "nodes", "gauge", "Nodes alive in the registry (their lease).", [("", len(reg.table.nodes))]
    )
    out = dict(node.client.counts)
    inc = dict(node.server.counts)
    metric(
        "peer_hops_total",
        "counter",
        "User streams through the peer channel: out, spliced to another node; in, served "
        "here for another node.",
        [('{direction="out"}', out.get("opened", 0)), ('{direction="in"}', inc.get("served", 0))],
    )
    failures = [(f'{{direction="out",reason="{r}"}}', out.get(r, 0)) for r in OUT_FAILED]
    refused = sorted(k for k in inc if k.startswith("refused_"))
    failures += [
        (f'{{direction="in",reason="{label(r)}"}}', inc.get(r, 0)) for r in (*IN_FAILED, *refused)
    ]
    metric(
        "peer_streams_failed_total",
        "counter",
        "Peer streams that could not be opened, by direction and reason.",
        failures,
    )
    metric(
        "peer_connections_total",
        "counter",
        "Peer TLS connections dialled, spares used, spares found dead.",
        [(f'{{kind="{k}"}}', out.get(k, 0)) for k in ("dialed", "spare_used", "spare_dead")],
    )
    return "\n".join(lines) + "\n"
