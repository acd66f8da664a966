"""A lab: a bridge in its own network namespace and one namespace per node, all ours.

Nothing is created in the host namespace: veth pairs are created directly inside the node
namespace with their peer in the bridge namespace (`ip -n NODE link add ... peer ... netns
BRIDGE`). Leaving the ``with`` block removes everything, also after an exception.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from hagate.lab import procs, registry, shell
from hagate.lab.errors import LabError
from hagate.lab.guard import NETNS_DIR, netns_path
from hagate.lab.node import Node

_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_NODE = re.compile(r"^[a-z][a-z0-9_]{0,11}$")
DEFAULT_IPV6_PREFIX = "fd00:6867:7465::/64"  # a ULA; node host parts follow their IPv4 ones


def unavailable_reason() -> str | None:
    """Why labs cannot run here (not root, no `ip netns`, no nft), or None if they can."""
    if os.geteuid() != 0:
        return "network-namespace labs need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        shell.run(["ip", "netns", "list"], timeout=5)
    except LabError as exc:
        return f"`ip netns` is not available: {exc}"
    return None


def _existing_netns() -> set[str]:
    try:
        return set(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return set()


def _v6_for(v4: ipaddress.IPv4Interface, prefix: ipaddress.IPv6Network) -> ipaddress.IPv6Interface:
    host = int(v4.ip) - int(v4.network.network_address)
    return ipaddress.IPv6Interface((prefix.network_address + host, prefix.prefixlen))


class Lab:
    """Namespaces, veths, a bridge, temp dir and processes of one lab run."""

    def __init__(self, name: str, bridge_netns: str, tmpdir: Path) -> None:
        self.name = name
        self.bridge_netns = bridge_netns
        self.tmpdir = tmpdir
        self.nodes: dict[str, Node] = {}
        self._torn_down = False

    # -- creation -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        prefix: str = "hgt",
        nodes: Mapping[str, str] | None = None,
        ipv6: bool = False,
        ipv6_prefix: str = DEFAULT_IPV6_PREFIX,
    ) -> Lab:
        """Build a lab: one namespace per node (``name -> "IPv4/len"``) on a shared bridge."""
        if not _PREFIX.match(prefix):
            raise LabError(f"lab prefix must be 1-8 lowercase letters/digits, not {prefix!r}")
        spec = dict(nodes) if nodes is not None else {"n1": "10.1.1.5/24", "n2": "10.1.1.10/24"}
        if not spec:
            raise LabError("a lab needs at least one node")
        addresses: dict[str, ipaddress.IPv4Interface] = {}
        for node_name, text in spec.items():
            if not _NODE.match(node_name) or node_name == "br":
                raise LabError(f"node name must be 1-12 of a-z0-9_ (not 'br'), not {node_name!r}")
            try:
                addresses[node_name] = ipaddress.IPv4Interface(text)
            except ValueError:
                raise LabError(f"node {node_name}: not an IPv4 address/prefix: {text!r}") from None
        try:
            v6net = ipaddress.IPv6Network(ipv6_prefix)
        except ValueError:
            raise LabError(f"not an IPv6 prefix: {ipv6_prefix!r}") from None
        reason = unavailable_reason()
        if reason:
            raise LabError(reason)
        cls.cleanup_stale(prefix)  # what a crashed earlier run of ours left behind

        name = cls._unique_name(prefix)
        bridge_ns = f"{name}-br"
        node_ns = {n: f"{name}-{n}" for n in spec}
        tmpdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        registry.write(
            registry.LabRecord(
                name=name,
                pid=os.getpid(),
                started=procs.start_time(os.getpid()),
                namespaces=[bridge_ns, *node_ns.values()],
                tmpdir=str(tmpdir),
            )
        )
        lab = cls(name, bridge_ns, tmpdir)
        registry.track(id(lab), lab.teardown)
        try:
            lab._build(addresses, node_ns, v6net if ipv6 else None)
        except BaseException:
            lab.teardown(quiet=True)
            raise
        return lab

    @staticmethod
    def _unique_name(prefix: str) -> str:
        taken = {n.split("-")[1] for n in _existing_netns() if n.startswith(f"{prefix}-")}
        taken |= {r.name.split("-")[-1] for r in registry.read_all()}
        for _ in range(100):
            tag = secrets.token_hex(2)
            if tag not in taken:
                return f"{prefix}-{tag}"
        raise LabError(f"no free lab name with prefix {prefix!r}")

    def _build(
        self,
        addresses: Mapping[str, ipaddress.IPv4Interface],
        node_ns: Mapping[str, str],
        v6net: ipaddress.IPv6Network | None,
    ) -> None:
        br = self.bridge_netns
        adds = "".join(f"netns add {ns}\n" for ns in [br, *node_ns.values()])
        shell.run(["ip", "-b", "-"], input=adds)
        bridge = [
            "link set lo up",
            "link add br0 type bridge mcast_snooping 0 forward_delay 0",
            "link set br0 up",
        ]
        shell.run(["ip", "-n", br, "-b", "-"], input="\n".join(bridge) + "\n")
        ports = []
        for index, (node_name, ns) in enumerate(node_ns.items()):
            port = f"p{index}-{node_name}"[:15]
            v4 = addresses[node_name]
            v6 = _v6_for(v4, v6net) if v6net is not None else None
            if v6 is not None:  # no DAD: addresses usable at once (sysctl inside the node ns)
                shell.run(
                    ["ip", "netns", "exec", ns, "sysctl", "-qw",
                     "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"]
                )  # fmt: skip
            cmds = [
                "link set lo up",
                f"link add eth0 type veth peer name {port} netns {br}",
                "link set eth0 up",
                f"addr add {v4} dev eth0",
            ]
            if v6 is not None:
                cmds.append(f"addr add {v6} dev eth0 nodad")
            shell.run(["ip", "-n", ns, "-b", "-"], input="\n".join(cmds) + "\n")
            link = json.loads(shell.ip("-n", ns, "-j", "link", "show", "dev", "eth0").stdout)[0]
            self.nodes[node_name] = Node(
                name=node_name,
                netns=ns,
                address=v4,
                address6=v6,
                bridge_netns=br,
                bridge_port=port,
                ifindex=int(link["ifindex"]),
                mac=str(link["address"]),
            )
            ports.append(f"link set {port} master br0 up")
        shell.run(["ip", "-n", br, "-b", "-"], input="\n".join(ports) + "\n")

    # -- use ----------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(self.nodes)
            raise LabError(f"no node {name!r} in lab {self.name} ({known})") from None

    def _node(self, node: Node | str) -> Node:
        return node if isinstance(node, Node) else self.node(node)

    @staticmethod
    def wait_until(
        predicate: Callable[[], object],
        timeout: float,
        interval: float = 0.005,
        what: str = "condition",
    ) -> float:
        """Poll ``predicate`` until true; return the seconds it took, LabError at timeout."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if predicate():
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                raise LabError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def node_dir(self, node: Node | str) -> Path:
        """A per-node directory in the lab's temp dir (removed at teardown)."""
        path = self.tmpdir / self._node(node).name
        path.mkdir(exist_ok=True)
        return path

    def start_keepalived(
        self, node: Node | str, conf_text: str, extra_args: Sequence[str] = ()
    ) -> subprocess.Popen[Any]:
        """Run keepalived in the node's namespace with per-node config, pid files and log.

        ``keepalived -n -l -D -f CONF -p PID -r VRRP_PID -c CHECKERS_PID``; stale pid files
        are removed first (keepalived refuses to start while they exist).
        """
        n = self._node(node)
        if shutil.which("keepalived") is None:
            raise LabError("keepalived is not installed")
        run_dir = self.node_dir(n)
        conf = run_dir / "keepalived.conf"
        conf.write_text(conf_text)
        pids = [run_dir / f"keepalived{s}.pid" for s in ("", "-vrrp", "-checkers")]
        for pid_file in pids:
            pid_file.unlink(missing_ok=True)
        argv = ["keepalived", "-n", "-l", "-D", "-f", str(conf)]
        argv += ["-p", str(pids[0]), "-r", str(pids[1]), "-c", str(pids[2]), *extra_args]
        with open(run_dir / "keepalived.log", "ab") as log:
            return n.spawn(argv, stdout=log, stderr=subprocess.STDOUT)

    def start_hagate(
        self, node: Node | str, conf_text: str, extra_args: Sequence[str] = ()
    ) -> subprocess.Popen[Any]:
        """Run `hagate vrrp -f CONF --run-dir DIR` (this Python) in the node's namespace."""
        n = self._node(node)
        run_dir = self.node_dir(n) / "hagate"
        run_dir.mkdir(exist_ok=True)
        conf = run_dir / "keepalived.conf"
        conf.write_text(conf_text)
        argv = [sys.executable, "-m", "hagate", "vrrp", "-f", str(conf), "--run-dir", str(run_dir)]
        with open(run_dir / "hagate.log", "ab") as log:
            return n.spawn([*argv, *extra_args], stdout=log, stderr=subprocess.STDOUT)

    # -- teardown -----------------------------------------------------------------------

    def teardown(self, quiet: bool = False) -> None:
        """Kill every process in the lab, delete its namespaces and temp dir (idempotent)."""
        if self._torn_down:
            return
        self._torn_down = True
        problems: list[str] = []
        for node in self.nodes.values():
            try:
                node.close()
            except Exception as exc:
                problems.append(f"{node.name}: {exc}")
        record = next((r for r in registry.read_all() if r.name == self.name), None)
        namespaces = record.namespaces if record else [self.bridge_netns]
        problems += remove_namespaces(namespaces)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        registry.remove(self.name)
        registry.untrack(id(self))
        if problems and not quiet:
            raise LabError(f"lab {self.name} teardown: " + "; ".join(problems))

    def detach(self) -> None:
        """Leave the lab running past this process (no teardown at exit or on SIGTERM).

        Once this process is gone, `hagate lab down` / :meth:`cleanup_stale` removes it.
        """
        registry.untrack(id(self))
        self._torn_down = True  # leaving a with-block no longer tears it down either

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.teardown()
        except LabError as error:
            if exc is None:
                raise
            print(f"hagate lab: {error}", file=sys.stderr)

    # -- stale labs ---------------------------------------------------------------------

    @staticmethod
    def cleanup_stale(prefix: str | None = None) -> list[str]:
        """Remove labs whose creating process is dead; returns the namespaces removed.

        With ``prefix`` only that prefix's labs, plus namespaces named ``PREFIX-xxxx-*``
        that no live lab claims (left if a run died before writing its record).
        """
        removed: list[str] = []
        claimed: set[str] = set()
        for record in registry.read_all():
            if prefix is not None and not record.name.startswith(f"{prefix}-"):
                claimed.update(record.namespaces)
                continue
            if not record.stale():
                claimed.update(record.namespaces)
                continue
            present = [ns for ns in record.namespaces if ns in _existing_netns()]
            remove_namespaces(present)
            removed += present
            shutil.rmtree(record.tmpdir, ignore_errors=True)
            registry.remove(record.name)
        if prefix is not None:
            pattern = re.compile(rf"^{re.escape(prefix)}-[0-9a-f]{{4}}-[a-z0-9_]+$")
            orphans = sorted(
                ns for ns in _existing_netns() if pattern.match(ns) and ns not in claimed
            )
            remove_namespaces(orphans)
            removed += orphans
        return removed


def remove_namespaces(namespaces: Sequence[str]) -> list[str]:
    """Kill every process in each namespace, then delete it; returns problems, never raises."""
    problems: list[str] = []
    paths = [netns_path(ns) for ns in namespaces]
    for path in paths:  # stop everything first so nothing reacts to its peers dying
        procs.signal_all(procs.pids_in_netns(path), signal.SIGSTOP)
    for path in paths:
        left = procs.kill_all(path, 5.0)
        if left:
            problems.append(f"processes {left} survived in {os.path.basename(path)}")
    present = [ns for ns in namespaces if os.path.exists(netns_path(ns))]
    if present:
        done = shell.run(
            ["ip", "-force", "-b", "-"],
            input="".join(f"netns del {ns}\n" for ns in present),
            check=False,
        )
        still = [ns for ns in present if os.path.exists(netns_path(ns))]
        if still:
            problems.append(f"could not delete {still}: {done.stderr.strip()}")
    return problems
