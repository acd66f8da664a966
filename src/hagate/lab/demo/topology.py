"""The seed's cluster as a lab: two gateway nodes behind a VIP, a device and a user."""

from __future__ import annotations

from dataclasses import dataclass

VIP = "10.1.1.100"
VIP_PREFIX = 24
VRID = 51  # the seed's virtual_router_id
DOMAIN = "gw.demo.lab"
DEVICE_NAME = "dev1"
TUNNEL_PORT = 7443
HTTP_PORT = 80
ADMIN_PORT = 9180  # node-local: /healthz (vrrp_script) and /metrics
WEB_PORT = 8080  # the device's own web service, on the device's loopback


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One lab node: its lab name (a namespace suffix), the name shown, its address."""

    key: str
    label: str
    address: str

    @property
    def interface(self) -> str:
        return f"{self.address}/{VIP_PREFIX}"


NODE1 = NodeSpec("node1", "node-1", "10.1.1.5")  # the seed's master.conf
NODE2 = NodeSpec("node2", "node-2", "10.1.1.10")  # the seed's standby.conf
DEVICE = NodeSpec("device", "device", "10.1.1.20")
USER = NodeSpec("user", "user", "10.1.1.30")
NODES = (NODE1, NODE2, DEVICE, USER)
GATEWAYS = (NODE1, NODE2)


def lab_nodes() -> dict[str, str]:
    """``Lab.create(nodes=...)``: namespace suffix -> "address/prefix"."""
    return {n.key: n.interface for n in NODES}


def device_host() -> str:
    """The Host header that routes a user's HTTP request to the device's web service."""
    return f"{DEVICE_NAME}.{DOMAIN}"
