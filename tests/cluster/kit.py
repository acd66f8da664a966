"""N gateways of one cluster in one event loop on loopback, sharing a real etcd."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.gateway.kit import Pki, free_port, gateway_config, make_pki

from hagate.cluster.config import ClusterConfig, EtcdSecurity
from hagate.gateway.config import GatewayConfig
from hagate.gateway.server import Gateway
from hagate.pki.ca import Role, issue

DEVICES = ("dev1", "dev2", "dev3")


def cluster_pki(root: Path, nodes: int) -> Pki:
    pki = make_pki(root, devices=(*DEVICES, "dev4"))
    for i in range(1, nodes + 1):
        issue(pki.dir, Role.NODE, f"n{i}", ips=["127.0.0.1"])
    return pki


@dataclass
class Cluster:
    pki: Pki
    gateways: dict[str, Gateway] = field(default_factory=dict)
    pinned: dict[str, int] = field(default_factory=dict)

    def gw(self, i: int) -> Gateway:
        return self.gateways[f"n{i}"]

    def http_port(self, i: int) -> int:
        return self.gw(i).addresses["http"][1]

    def tunnel_port(self, i: int) -> int:
        return self.gw(i).addresses["tunnel"][1]


def node_config(
    pki: Pki,
    i: int,
    etcd: tuple[str, int],
    pinned: dict[str, int],
    security: EtcdSecurity | None = None,
) -> GatewayConfig:
    bundle = pki.bundle("node", f"n{i}")
    peer = free_port()
    cluster = ClusterConfig(
        etcd=(etcd,),
        peer=("127.0.0.1", peer),
        advertise=f"127.0.0.1:{peer}",
        cert=bundle / "cert.pem",
        key=bundle / "key.pem",
        lease_ttl=2,
        etcd_timeout=1.0,
        etcd_security=security or EtcdSecurity(),
    )
    # Each node's inventory TCP ports on its own loopback address: the same ports everywhere.
    return gateway_config(
        pki, node=f"n{i}", cluster=cluster, tcp_pinned=pinned, tcp_host=f"127.0.0.{i}"
    )


@contextlib.asynccontextmanager
async def running_cluster(
    pki: Pki, etcd: tuple[str, int], nodes: int = 3
) -> AsyncIterator[Cluster]:
    pinned = {f"{d}/ssh": free_port() for d in DEVICES}
    cl = Cluster(pki, pinned=pinned)
    try:
        for i in range(1, nodes + 1):
            cfg = node_config(pki, i, etcd, pinned)
            gw = Gateway(cfg)
            await gw.start()
            cl.gateways[f"n{i}"] = gw
        for gw in cl.gateways.values():
            assert gw.cluster is not None and await gw.cluster.registry.wait_up(10)
        yield cl
    finally:
        for gw in cl.gateways.values():
            await gw.stop()


async def until(pred: Callable[[], object], timeout: float = 5.0, what: str = "") -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0
