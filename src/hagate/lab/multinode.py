"""N active gateway nodes in the lab: each node runs `hagate vrrp` (node i master of VIP i,
from one cluster description) and `hagate gateway` with ``[cluster]``; a separate 3-member
etcd (client port TLS only, client certificates required: the nodes present their node
certificates); devices that dial the VIP their name picks; a user namespace that enters at any
node.

Used by the lab tests (tests/cluster/test_lab.py), ``hagate lab demo --nodes 3`` and
bench/scale.py. Everything lives in the namespaces and the temp dir of one
:class:`~hagate.lab.lab.Lab`, so leaving the ``with`` block removes it all.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from hagate.cluster.layout import Layout, NodeSpec, keepalived_conf, vip_for
from hagate.lab import etcd as etcdproc
from hagate.lab.errors import LabError
from hagate.lab.lab import Lab
from hagate.lab.node import Node

DOMAIN = "gw.multi.lab"
TUNNEL_PORT = 7443
HTTP_PORT = 80
ADMIN_PORT = 9180
PEER_PORT = 7444
WEB_BASE = 8080
SUBNET = "10.1.1"


@dataclass(frozen=True, slots=True)
class Plan:
    nodes: int = 3
    etcd: int = 3
    advert_int: float = 0.1
    lease_ttl: int = 2
    heartbeat_ms: int = 200
    dead_after_ms: int = 3000
    fleets: int = 0  # extra device namespaces f0, f1, ... for many-agent benches
    etcd_timeout: float = 0.5  # s per etcd request (fast detection; a loaded bench wants more)
    etcd_timers: tuple[int, int] = (50, 500)  # etcd heartbeat and election, ms
    # VIPs each node is master of: with k, a dead node's devices go to k survivors (1/k of
    # its load each); 1 puts all of it on its ring successor
    vips_per_node: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.vips_per_node <= 4:
            raise LabError("vips_per_node: 1 to 4 (the lab's VIPs are .101-.149)")

    def node_ip(self, i: int) -> str:
        return f"{SUBNET}.{5 * i}"

    def vip(self, i: int, m: int = 0) -> str:
        """Node i's (m+1)-th VIP."""
        return f"{SUBNET}.{100 + i + 10 * m}"

    def node_vips(self, i: int) -> list[str]:
        return [self.vip(i, m) for m in range(self.vips_per_node)]

    def etcd_ip(self, k: int) -> str:
        return f"{SUBNET}.{20 + k}"

    def vips(self) -> list[str]:
        """Every VIP in the cluster description's order (what `vip_for` hashes over)."""
        return self.layout().vips()

    def owner(self, vip: str) -> int:
        """The node that is master of ``vip`` while every node runs."""
        for i in range(1, self.nodes + 1):
            if vip in self.node_vips(i):
                return i
        raise LabError(f"{vip} is no VIP of this lab")

    def layout(self) -> Layout:
        specs = tuple(
            NodeSpec(f"n{i}", self.node_ip(i), self.vip(i), tuple(self.node_vips(i)[1:]))
            for i in range(1, self.nodes + 1)
        )
        version = 3 if self.advert_int < 1 else 2
        return Layout(specs, "eth0", 24, 51, self.advert_int, vrrp_version=version)

    def topology(self) -> dict[str, str]:
        out = {f"n{i}": f"{self.node_ip(i)}/24" for i in range(1, self.nodes + 1)}
        out |= {f"e{k}": f"{self.etcd_ip(k)}/24" for k in range(1, self.etcd + 1)}
        out |= {"devs": f"{SUBNET}.50/24", "user": f"{SUBNET}.60/24"}
        out |= {f"f{k}": f"{SUBNET}.{150 + k}/24" for k in range(self.fleets)}
        return out

    def cluster_toml(self) -> str:
        """The cluster description (`hagate cluster keepalived|vip`, agents' [gateway])."""
        lay = self.layout()
        head = (
            f'interface = "{lay.interface}"\nprefix = {lay.prefix}\nvrid_base = {lay.vrid_base}\n'
            f"advert_int = {lay.advert_int}\nvrrp_version = {lay.vrrp_version}\n"
        )
        nodes = "".join(
            f'\n[[node]]\nname = "{n.name}"\naddress = "{n.address}"\n'
            + (f"vips = {json.dumps(list(n.vips))}\n" if n.more_vips else f'vip = "{n.vip}"\n')
            for n in lay.nodes
        )
        return head + nodes

    def device_on(self, i: int) -> str:
        """The first device name (dev1, dev2, ...) whose VIP is node i's (its first one)."""
        vips = self.vips()
        for k in range(1, 10000):
            if vip_for(f"dev{k}", vips) == self.vip(i):
                return f"dev{k}"
        raise LabError(f"no device name maps to {self.vip(i)}")


POLICY = """
[[rule]]
name = "open-web"
devices = ["*"]
services = ["*"]
routes = ["http", "https", "tcp"]
public = true

[[rule]]
name = "users-connect"
who = ["user:*"]
devices = ["*"]
services = ["*"]
routes = ["connect"]
"""


class MultiLab:
    """``with MultiLab.create(plan) as ml: ml.start(); ...``"""

    def __init__(self, lab: Lab, plan: Plan) -> None:
        self.lab = lab
        self.plan = plan
        self.work = lab.tmpdir / "multi"
        self.work.mkdir()
        self.pki = self.work / "pki"
        self.agents: dict[str, subprocess.Popen[Any]] = {}
        self.webs: dict[str, subprocess.Popen[Any]] = {}
        self.etcd_procs: dict[int, subprocess.Popen[Any]] = {}
        self.gateways: dict[int, subprocess.Popen[Any]] = {}
        self._web_ports: dict[str, int] = {}
        self._devices_issued: set[str] = set()

    @classmethod
    def create(cls, plan: Plan | None = None, prefix: str = "hgm") -> MultiLab:
        plan = plan or Plan()
        lab = Lab.create(prefix, nodes=plan.topology())
        try:
            ml = cls(lab, plan)
            ml.write_files()
        except BaseException:
            lab.teardown(quiet=True)
            raise
        return ml

    def __enter__(self) -> MultiLab:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.lab.teardown()

    def node(self, name: str) -> Node:
        return self.lab.node(name)

    # ------------------------------------------------------------------ files

    def write_files(self) -> None:
        from hagate.pki.ca import Role, init_ca, issue

        p = self.plan
        init_ca(self.pki, "hagate multi-node lab CA", days=2)
        ips = [*p.vips(), *(p.node_ip(i) for i in range(1, p.nodes + 1))]
        issue(self.pki, Role.SERVER, "gateway", days=2, dns=[DOMAIN, f"*.{DOMAIN}"], ips=ips)
        for i in range(1, p.nodes + 1):
            issue(self.pki, Role.NODE, f"n{i}", days=2, ips=[p.node_ip(i)])
        # etcd's client port: TLS only, client certificates of the same CA (the nodes' own)
        etcd_ips = [p.etcd_ip(k) for k in range(1, p.etcd + 1)]
        issue(self.pki, Role.SERVER, "etcd", days=2, ips=etcd_ips)
        issue(self.pki, Role.USER, "alice", days=2)
        (self.work / "policy.toml").write_text(POLICY)
        layout = p.layout()
        (self.work / "cluster.toml").write_text(p.cluster_toml())
        for i in range(1, p.nodes + 1):
            (self.work / f"n{i}.toml").write_text(self.gateway_toml(i))
            (self.work / f"n{i}.conf").write_text(keepalived_conf(layout, i - 1))

    def gateway_toml(self, i: int) -> str:
        p = self.plan
        server = self.pki / "issued" / "server" / "gateway"
        node = self.pki / "issued" / "node" / f"n{i}"
        etcd = ", ".join(f'"https://{p.etcd_ip(k)}:2379"' for k in range(1, p.etcd + 1))
        return (
            f'domain = "{DOMAIN}"\nnode = "n{i}"\n\n'
            f'[tls]\nca = "{self.pki / "ca.crt"}"\ncert = "{server / "cert.pem"}"\n'
            f'key = "{server / "key.pem"}"\ncrl = "{self.pki / "crl.pem"}"\n\n'
            f'[listen]\ntunnel = "0.0.0.0:{TUNNEL_PORT}"\nhttp = "0.0.0.0:{HTTP_PORT}"\n'
            f'admin = "127.0.0.1:{ADMIN_PORT}"\n\n'
            f'[policy]\nfile = "{self.work / "policy.toml"}"\n\n'
            f"[limits]\nheartbeat_ms = {p.heartbeat_ms}\ndead_after_ms = {p.dead_after_ms}\n\n"
            f'[cluster]\netcd = [{etcd}]\npeer = "{p.node_ip(i)}:{PEER_PORT}"\n'
            f'cert = "{node / "cert.pem"}"\nkey = "{node / "key.pem"}"\n'
            f"lease_ttl = {p.lease_ttl}\netcd_timeout = {p.etcd_timeout}\n"
        )

    def agent_toml(self, device: str, web_port: int, vip: str | None = None) -> Path:
        bundle = self.pki / "issued" / "device" / device
        path = self.work / f"agent-{device}-{web_port}.toml"
        # No VIP given: the agent picks it itself from the cluster description.
        where = (
            f'gateway = "{vip}:{TUNNEL_PORT}"\n'
            if vip
            else f'[gateway]\ncluster = "{self.work / "cluster.toml"}"\nport = {TUNNEL_PORT}\n'
        )
        path.write_text(
            f'server_name = "{DOMAIN}"\n{where}\n'
            f'[tls]\nca = "{bundle / "ca.crt"}"\ncert = "{bundle / "cert.pem"}"\n'
            f'key = "{bundle / "key.pem"}"\n\n'
            f'[[service]]\nname = "http"\ntype = "http"\ntarget = "127.0.0.1:{web_port}"\n\n'
            "[reconnect]\nfast_retries = 5\nfast_delay_ms = 50\nbase_delay_ms = 200\n"
            "max_delay_s = 2\n"
        )
        return path

    # ------------------------------------------------------------------ etcd

    def etcd_tls(self) -> etcdproc.ServerTLS:
        bundle = self.pki / "issued" / "server" / "etcd"
        return etcdproc.ServerTLS(bundle / "cert.pem", bundle / "key.pem", self.pki / "ca.crt")

    def etcd_members(self) -> list[etcdproc.Member]:
        tls = self.etcd_tls()
        return [
            etcdproc.Member(f"e{k}", self.plan.etcd_ip(k), tls=tls)
            for k in range(1, self.plan.etcd + 1)
        ]

    def start_etcd(self, k: int | None = None, wait: bool = True) -> None:
        """Start member ``k`` (all when None); a restart keeps its data directory."""
        members = self.etcd_members()
        for m in members if k is None else [members[k - 1]]:
            n = int(m.name[1:])
            data = self.work / f"etcd-{m.name}"
            argv = etcdproc.argv(m, members, data, f"{self.lab.name}-etcd", *self.plan.etcd_timers)
            with open(self.work / f"{m.name}.log", "ab") as log:
                self.etcd_procs[n] = self.node(m.name).spawn(argv, stdout=log, stderr=log)
        if wait:
            for m in members if k is None else [members[k - 1]]:
                self.wait_port(self.node(m.name), m.client_port, 15.0, m.host)

    def kill_etcd(self, k: int) -> None:
        self.node(f"e{k}").crash()
        self.etcd_procs.pop(k, None)

    def wait_port(self, node: Node, port: int, timeout: float, host: str = "127.0.0.1") -> None:
        address = host

        def open_() -> bool:
            try:
                with node.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.settimeout(0.2)
                    s.connect((str(address), port))
                return True
            except OSError:
                return False

        self.lab.wait_until(open_, timeout, 0.05, f"{node.name}:{port}")

    # ------------------------------------------------------------------ gateway nodes

    def start_node(self, i: int) -> None:
        """`hagate vrrp` and `hagate gateway` in node i's namespace."""
        name = f"n{i}"
        n = self.node(name)
        self.lab.start_hagate(n, (self.work / f"{name}.conf").read_text())
        argv = [sys.executable, "-m", "hagate", "gateway", "-c", str(self.work / f"{name}.toml")]
        with open(self.work / f"{name}-gateway.log", "ab") as log:
            self.gateways[i] = n.spawn(argv, stdout=log, stderr=subprocess.STDOUT)

    def start_nodes(self, timeout: float = 30.0) -> None:
        for i in range(1, self.plan.nodes + 1):
            self.start_node(i)
        for i in range(1, self.plan.nodes + 1):
            self.wait_healthy(i, timeout)

    def wait_healthy(self, i: int, timeout: float = 20.0) -> None:
        def up() -> bool:
            h = self.health(i)
            cluster = h.get("cluster") if h else None
            return isinstance(cluster, dict) and cluster.get("etcd") == "up"

        self.lab.wait_until(up, timeout, 0.05, f"n{i} up with etcd")

    def crash_node(self, i: int) -> None:
        self.node(f"n{i}").crash()

    def health(self, i: int) -> dict[str, Any] | None:
        from hagate.lab.demo.probe import get_json

        return get_json(self.node(f"n{i}"), ADMIN_PORT, "/healthz", 1.0)

    def cluster_health(self, i: int) -> dict[str, Any]:
        h = self.health(i) or {}
        c = h.get("cluster")
        return c if isinstance(c, dict) else {}

    # ------------------------------------------------------------------ devices

    def start_device(self, device: str, text: str | None = None, vip: str | None = None) -> str:
        """A web service saying ``text`` and an agent for ``device``; returns the key."""
        from hagate.pki.ca import Role, issue

        if device not in self._devices_issued:
            issue(self.pki, Role.DEVICE, device, days=2)
            self._devices_issued.add(device)
        port = WEB_BASE + len(self._web_ports)
        key = f"{device}@{port}"
        root = self.work / f"web-{port}"
        root.mkdir()
        (root / "index.html").write_text(text or f"hello from {device}\n")
        devs = self.node("devs")
        with open(self.work / f"web-{port}.log", "ab") as log:
            self.webs[key] = devs.spawn(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._web_ports[key] = port
        self.wait_port(devs, port, 10.0)
        conf = self.agent_toml(device, port, vip)
        with open(self.work / f"agent-{device}-{port}.log", "ab") as log:
            self.agents[key] = devs.spawn(
                [sys.executable, "-m", "hagate", "agent", "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return key

    def signal_agent(self, key: str, sig: int = signal.SIGKILL) -> None:
        proc = self.agents[key]
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig == signal.SIGKILL:
                proc.wait(5)

    # ------------------------------------------------------------------ users

    def get(
        self, entry: int, device: str, path: str = "/", timeout: float = 1.0
    ) -> tuple[int, str]:
        """GET http://DEVICE.DOMAIN/PATH entering at node ``entry``, from the user namespace."""
        from hagate.lab.demo.probe import http_get

        user = self.node("user")

        def factory() -> socket.socket:
            return user.socket(socket.AF_INET, socket.SOCK_STREAM)

        try:
            status, body = http_get(
                factory,
                (self.plan.node_ip(entry), HTTP_PORT),
                f"{device}.{DOMAIN}",
                path,
                timeout,
            )
        except (OSError, ValueError, LabError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        return status, body.decode(errors="replace")

    def logs(self) -> str:
        """Every log of the lab (for a failing test's report)."""
        out = []
        for path in sorted(self.work.glob("*.log")):
            out.append(f"==> {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        for path in sorted(self.lab.tmpdir.glob("*/hagate/hagate.log")):
            out.append(f"==> {path}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)


def summary(ml: MultiLab) -> str:
    return json.dumps({f"n{i}": ml.cluster_health(i) for i in range(1, ml.plan.nodes + 1)})
