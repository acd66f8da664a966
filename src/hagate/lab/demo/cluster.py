"""The demo cluster in a lab: start, watch and crash its processes (used by the demo and bench).

Everything runs inside the lab's namespaces: `hagate vrrp` (or keepalived) and `hagate gateway`
on node-1 and node-2, a web service and `hagate agent` on the device. The cluster only reads
state from outside: who holds the VIP, GARPs seen by the user node, the gateways' /healthz.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hagate.lab import AddressWatcher, GarpWatcher, Lab, LabError, Node
from hagate.lab.demo import configs
from hagate.lab.demo.configs import ClusterPlan, VrrpImpl
from hagate.lab.demo.fleet import POLICY_RULE, FleetPlan, fleet_nodes, issue_fleet
from hagate.lab.demo.probe import RequestLoop, get_json, get_text, http_get
from hagate.lab.demo.topology import (
    ADMIN_PORT,
    DEVICE,
    DEVICE_NAME,
    GATEWAYS,
    HTTP_PORT,
    NODE1,
    NODE2,
    USER,
    VIP,
    WEB_PORT,
    NodeSpec,
    device_host,
    lab_nodes,
)
from hagate.lab.guard import NETNS_DIR

WEB_BODY = f"hello from {DEVICE_NAME}, through the VIP\n"
# A fleet's gateways ping every agent at the gateway's default interval: the demo's 100 ms
# at sub-second adverts is for one device; for 10,000 it would be 100,000 pings per second.
FLEET_HEARTBEAT_MS = 300
# From 1,000 devices a ping a second (and 6 s before an agent calls a silent gateway dead):
# at 300 ms the pings of 10,000 idle agents took more than a core of this 2-core machine
# (gateway and agents), the core the storm needs. A moved VIP is still noticed at once in
# the lab (the crashed node's kernel resets, the node that lost the VIP drops its sessions).
BIG_FLEET = 1000
BIG_FLEET_HEARTBEAT_MS = 1000
BIG_FLEET_DEAD_AFTER_MS = 6000


def fleet_liveness(devices: int) -> tuple[int, int | None]:
    """(heartbeat_ms, dead_after_ms or None for the default) of a fleet's gateways."""
    if devices >= BIG_FLEET:
        return BIG_FLEET_HEARTBEAT_MS, BIG_FLEET_DEAD_AFTER_MS
    return FLEET_HEARTBEAT_MS, None


@dataclass
class DemoCluster:
    """A lab holding the seed's cluster; ``close()`` tears it all down."""

    lab: Lab
    plan: ClusterPlan
    impls: dict[str, VrrpImpl]
    shared: Path
    addr_watchers: dict[str, AddressWatcher] = field(default_factory=dict)
    garp: GarpWatcher | None = None
    vrrp_confs: dict[str, str] = field(default_factory=dict)
    fleet_plan: FleetPlan | None = None
    pki_from: Path | None = None
    _procs: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        plan: ClusterPlan,
        impls: dict[str, VrrpImpl],
        prefix: str = "hgd",
        fleet: FleetPlan | None = None,
        pki_from: Path | None = None,
    ) -> DemoCluster:
        """Build the lab (namespaces, bridge), PKI and every configuration file.

        With ``fleet`` the lab has the fleet's device namespaces too and the PKI a
        certificate per fleet device; ``pki_from`` copies a PKI made before (a bench that
        builds several clusters issues 10,000 certificates once).
        """
        nodes = lab_nodes() | (fleet_nodes(fleet) if fleet else {})
        lab = Lab.create(prefix=prefix, nodes=nodes)
        try:
            shared = lab.tmpdir / "shared"
            shared.mkdir()
            cluster = cls(lab, plan, impls, shared, fleet_plan=fleet, pki_from=pki_from)
            cluster._write_files()
            for spec in GATEWAYS:
                cluster.addr_watchers[spec.key] = lab.node(spec.key).watch_addresses()
            cluster.garp = lab.node(USER.key).watch_garp()
        except BaseException:
            lab.teardown(quiet=True)
            raise
        return cluster

    def _write_files(self) -> None:
        pki = self.shared / "pki"
        if self.pki_from is not None:
            shutil.copytree(self.pki_from, pki)
        else:
            configs.make_pki(pki)
        policy = configs.policy_toml()
        heartbeat, dead_after = self.plan.heartbeat_ms, None
        if self.fleet_plan is not None:
            issue_fleet(pki, self.fleet_plan)
            policy += POLICY_RULE
            heartbeat, dead_after = fleet_liveness(self.fleet_plan.devices)
        gw = self.gateway_toml
        standby = self.fleet_plan is not None and self.fleet_plan.standby
        endpoints = configs.standby_endpoints() if standby else ()
        gw.write_text(configs.gateway_toml(pki, heartbeat, dead_after, endpoints))
        (self.shared / "policy.toml").write_text(policy)
        self.agent_toml.write_text(configs.agent_toml(self.shared / "pki"))
        web = self.shared / "www"
        web.mkdir()
        (web / "index.html").write_text(WEB_BODY)
        for spec in GATEWAYS:
            self.vrrp_confs[spec.key] = configs.keepalived_conf(spec, self.plan, gw)

    @property
    def gateway_toml(self) -> Path:
        return self.shared / "gateway.toml"

    @property
    def agent_toml(self) -> Path:
        return self.shared / "agent.toml"

    def node(self, spec: NodeSpec) -> Node:
        return self.lab.node(spec.key)

    def log_path(self, spec: NodeSpec, what: str) -> Path:
        return self.lab.node_dir(spec.key) / f"{what}.log"

    def _spawn(self, spec: NodeSpec, what: str, argv: list[str]) -> None:
        with open(self.log_path(spec, what), "ab") as log:
            proc = self.node(spec).spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        self._procs[f"{spec.key}/{what}"] = proc

    # -- processes -----------------------------------------------------------------------

    def start_gateway(self, spec: NodeSpec) -> None:
        argv = [sys.executable, "-m", "hagate", "gateway", "-c", str(self.gateway_toml)]
        argv += ["--node", spec.label, "--access-log", str(self.access_log_path(spec))]
        self._spawn(spec, "gateway", argv)

    def access_log_path(self, spec: NodeSpec) -> Path:
        """The node's own access log (JSON lines): the gateway.toml is shared, this is not."""
        return self.log_path(spec, "gateway").with_name("access.log")

    def start_vrrp(self, spec: NodeSpec) -> None:
        conf = self.vrrp_confs[spec.key]
        if self.impls[spec.key] is VrrpImpl.KEEPALIVED:
            proc = self.lab.start_keepalived(spec.key, conf)
        else:
            proc = self.lab.start_hagate(spec.key, conf)
        self._procs[f"{spec.key}/vrrp"] = proc

    def vrrp_log(self, spec: NodeSpec) -> Path:
        node_dir = self.lab.node_dir(spec.key)
        if self.impls[spec.key] is VrrpImpl.KEEPALIVED:
            return node_dir / "keepalived.log"
        return node_dir / "hagate" / "hagate.log"

    def start_web(self) -> None:
        argv = [sys.executable, "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1"]
        self._spawn(DEVICE, "web", [*argv, "--directory", str(self.shared / "www")])

    def start_agent(self) -> None:
        argv = [sys.executable, "-m", "hagate", "agent", "-c", str(self.agent_toml)]
        self._spawn(DEVICE, "agent", argv)

    def start_node(self, spec: NodeSpec, timeout: float = 15.0) -> None:
        """Gateway first (chk_httpd needs it healthy), then the VRRP daemon."""
        self.start_gateway(spec)
        self.wait_healthy(spec, timeout)
        self.start_vrrp(spec)

    def crash(self, spec: NodeSpec) -> float:
        """SIGKILL every process of ``spec`` (vrrp daemon, gateway, checks): the crash time."""
        t0 = self.node(spec).crash()
        for key in [k for k in self._procs if k.startswith(f"{spec.key}/")]:
            del self._procs[key]
        return t0

    def exited(self) -> list[str]:
        """Processes we started that are no longer running ("node1/gateway (exit 2)")."""
        return [
            f"{key} (exit {proc.returncode})"
            for key, proc in self._procs.items()
            if proc.poll() is not None
        ]

    # -- observing -----------------------------------------------------------------------

    def health(self, spec: NodeSpec) -> dict[str, object] | None:
        """The gateway's /healthz on ``spec`` (None when it does not answer)."""
        return get_json(self.node(spec), ADMIN_PORT, "/healthz", timeout=0.3)

    def sessions_total(self, spec: NodeSpec) -> int | None:
        """Agent sessions the gateway on ``spec`` has accepted so far (its /metrics); None
        when it does not answer. Unlike /healthz's count of live sessions this cannot be
        fooled by a stale session to a node that lost the VIP."""
        text = get_text(self.node(spec), ADMIN_PORT, "/metrics", timeout=0.3)
        if text is None:
            return None
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "hagate_sessions_total":
                try:
                    return int(float(value))
                except ValueError:
                    return None
        return None

    def metrics(self, spec: NodeSpec) -> dict[str, float]:
        """The gateway's /metrics on ``spec`` as {name{labels}: value} ({} if it is silent)."""
        text = get_text(self.node(spec), ADMIN_PORT, "/metrics", timeout=0.5)
        out: dict[str, float] = {}
        for line in (text or "").splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
        return out

    def agents(self, spec: NodeSpec) -> int:
        data = self.health(spec)
        value = data.get("agents") if data else None
        return value if isinstance(value, int) else 0

    def vrrp_state(self, spec: NodeSpec) -> tuple[str, str]:
        """(state, reason of the last transition) from `hagate vrrp status`; for keepalived
        the state is read off the VIP ("MASTER" when it holds it)."""
        if self.impls[spec.key] is VrrpImpl.HAGATE:
            from hagate.daemon.status import StatusError, query

            try:
                snap = query(self.lab.node_dir(spec.key) / "hagate", timeout=0.5)
                inst = snap["instances"][0]
                last = inst.get("last_transition") or {}
                return str(inst["state"]), str(last.get("reason") or "")
            except (StatusError, LookupError, TypeError, ImportError):
                return "?", ""
        held = spec.key in [s.key for s in self.holders()]
        return ("MASTER" if held else "BACKUP"), "keepalived (state read off the VIP)"

    def heard_master(self, spec: NodeSpec) -> bool:
        """True once ``spec`` is BACKUP and has received adverts (so it will stay BACKUP)."""
        if self.impls[spec.key] is VrrpImpl.KEEPALIVED:
            return "Entering BACKUP STATE" in tail_of(self.vrrp_log(spec), 200)
        from hagate.daemon.status import StatusError, query

        try:
            inst = query(self.lab.node_dir(spec.key) / "hagate", timeout=0.5)["instances"][0]
            return bool(inst["state"] == "BACKUP" and inst["counters"]["adverts_in"] > 0)
        except (StatusError, LookupError, TypeError):
            return False

    def wait_backup(self, spec: NodeSpec, timeout: float) -> float:
        """Wait until ``spec`` is BACKUP and has heard the master (keepalived: one interval
        after it logged BACKUP, its adverts are not visible from outside)."""
        took = self._wait(
            lambda: self.heard_master(spec), timeout, f"{spec.label} BACKUP", [self.vrrp_log(spec)]
        )
        if self.impls[spec.key] is VrrpImpl.KEEPALIVED:
            time.sleep(1.5 * self.plan.advert_int)
        return took

    def holders(self) -> list[NodeSpec]:
        """The gateway nodes that hold the VIP now (one, when the cluster is healthy)."""
        vip = ipaddress.ip_address(VIP)
        return [s for s in GATEWAYS if any(a.ip == vip for a in self.node(s).addresses())]

    def master(self) -> NodeSpec | None:
        held = self.holders()
        return held[0] if len(held) == 1 else None

    def web_ok(self) -> bool:
        def factory() -> Any:
            import socket

            return self.node(DEVICE).socket(socket.AF_INET, socket.SOCK_STREAM)

        try:
            status, body = http_get(factory, ("127.0.0.1", WEB_PORT), "localhost", "/", 0.5)
        except (OSError, ValueError, LabError):
            return False
        return status == 200 and body == WEB_BODY.encode()

    def _wait(self, predicate: Any, timeout: float, what: str, logs: list[Path]) -> float:
        try:
            return Lab.wait_until(predicate, timeout, interval=0.01, what=what)
        except LabError as exc:
            raise LabError(f"{exc}{self._diagnose(logs)}") from None

    def _diagnose(self, logs: list[Path]) -> str:
        lines = []
        dead = self.exited()
        if dead:
            lines.append("exited: " + ", ".join(dead))
        for path in logs:
            tail = tail_of(path)
            if tail:
                lines.append(f"--- {path.name} ({path.parent.name}), last lines:\n{tail}")
        return ("\n" + "\n".join(lines)) if lines else ""

    def wait_healthy(self, spec: NodeSpec, timeout: float = 15.0) -> float:
        what = f"gateway on {spec.label} healthy"
        logs = [self.log_path(spec, "gateway")]
        return self._wait(lambda: self.health(spec) is not None, timeout, what, logs)

    def wait_web(self, timeout: float = 15.0) -> float:
        logs = [self.log_path(DEVICE, "web")]
        return self._wait(self.web_ok, timeout, "device web service up", logs)

    def wait_master(self, spec: NodeSpec, timeout: float) -> float:
        logs = [self.vrrp_log(s) for s in GATEWAYS]
        return self._wait(
            lambda: [s.key for s in self.holders()] == [spec.key],
            timeout,
            f"{spec.label} the only holder of VIP {VIP}",
            logs,
        )

    def wait_agent(self, spec: NodeSpec, timeout: float) -> float:
        logs = [self.log_path(DEVICE, "agent"), self.log_path(spec, "gateway")]
        return self._wait(
            lambda: self.agents(spec) >= 1, timeout, f"agent connected to {spec.label}", logs
        )

    def start_vrrp_pair(self, timeout: float = 15.0) -> None:
        """node-1's VRRP daemon, and once it is master node-2's (with the sticky recipe both
        start BACKUP, and whichever daemon is up first would keep the VIP)."""
        self.start_vrrp(NODE1)
        self.wait_master(NODE1, timeout)
        self.start_vrrp(NODE2)

    def request_loop(self, rate: float = 20.0, timeout: float = 0.5) -> RequestLoop:
        """The user's requests through the VIP to the device's web service (not started)."""
        address = (VIP, HTTP_PORT)
        return RequestLoop(self.node(USER), address, device_host(), b"hello from", rate, timeout)

    def bring_up(self, timeout: float = 15.0) -> None:
        """Device web service, both gateways, both VRRP daemons, the agent; node-1 master."""
        self.start_web()
        for spec in GATEWAYS:
            self.start_gateway(spec)
        self.wait_web(timeout)
        for spec in GATEWAYS:
            self.wait_healthy(spec, timeout)
        self.start_vrrp_pair(timeout)
        self.wait_backup(NODE2, timeout)
        self.start_agent()
        self.wait_agent(NODE1, timeout)

    def copy_logs(self, dest: Path) -> list[Path]:
        """Copy every node's logs (vrrp, gateway, agent, web) to ``dest``."""
        copied = []
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.lab.tmpdir.glob("*/**/*.log")):
            rel = path.relative_to(self.lab.tmpdir)
            if rel.parts[0] == "shared":
                continue
            target = dest / ("-".join(rel.parts))
            with contextlib.suppress(OSError):
                shutil.copyfile(path, target)
                copied.append(target)
        return copied

    def close(self) -> list[str]:
        """Tear the lab down; returns the lab's namespaces that are still present (none)."""
        for watcher in [*self.addr_watchers.values(), self.garp]:
            if watcher is not None:
                watcher.stop()
        name = self.lab.name
        self.lab.teardown()
        return leftover_namespaces(name)

    def other(self, spec: NodeSpec) -> NodeSpec:
        return NODE2 if spec.key == NODE1.key else NODE1


def leftover_namespaces(lab_name: str) -> list[str]:
    """Namespaces of the lab ``lab_name`` that still exist."""
    try:
        present = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(ns for ns in present if ns.startswith(f"{lab_name}-"))


def tail_of(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
