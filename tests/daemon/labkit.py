"""Helpers for the daemon's lab tests: config text, starting nodes, reading their status."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hagate.lab.shell as shell
from hagate.daemon.status import StatusError, query
from hagate.lab import Lab, Node

VIP = "10.1.1.100"


def vrrp_conf(
    *,
    state: str = "BACKUP",
    priority: int = 100,
    advert_int: float = 1,
    version: int = 2,
    src: str | None = None,
    peers: Sequence[str] = (),
    auth_pass: str | None = None,
    vips: Sequence[str] = (f"{VIP}/24",),
    vrid: int = 51,
    nopreempt: bool = False,
    instance_extra: str = "",
    top: str = "",
    track_scripts: Sequence[str] = (),
    name: str = "VI_1",
) -> str:
    """A keepalived.conf with one vrrp_instance (valid for keepalived 2.2.7 and hagate)."""
    lines = [top, f"vrrp_instance {name} {{", f"    state {state}", "    interface eth0"]
    lines += [f"    virtual_router_id {vrid}", f"    priority {priority}"]
    lines += [f"    advert_int {advert_int:g}", f"    version {version}"]
    if src:
        lines.append(f"    unicast_src_ip {src}")
    if peers:
        lines += ["    unicast_peer {", *[f"        {p}" for p in peers], "    }"]
    if auth_pass is not None:
        auth = ["        auth_type PASS", f"        auth_pass {auth_pass}"]
        lines += ["    authentication {", *auth, "    }"]
    lines += ["    virtual_ipaddress {", *[f"        {v}" for v in vips], "    }"]
    if nopreempt:
        lines.append("    nopreempt")
    if track_scripts:
        lines += ["    track_script {", *[f"        {s}" for s in track_scripts], "    }"]
    if instance_extra:
        lines.append(instance_extra)
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_dir(lab: Lab, node: Node) -> Path:
    return lab.node_dir(node) / "hagate"


def start(lab: Lab, node: Node, conf: str, *extra: str) -> None:
    lab.start_hagate(node, conf, ["--log-level", "debug", *extra])


def status(lab: Lab, node: Node) -> dict[str, Any]:
    return query(run_dir(lab, node))


def instance(lab: Lab, node: Node, name: str = "VI_1") -> dict[str, Any]:
    for inst in status(lab, node)["instances"]:
        if inst["name"] == name:
            return dict(inst)
    raise AssertionError(f"no instance {name} on {node.name}")


def state_of(lab: Lab, node: Node, name: str = "VI_1") -> str | None:
    try:
        return str(instance(lab, node, name)["state"])
    except (StatusError, AssertionError):
        return None


def wait_state(lab: Lab, node: Node, state: str, timeout: float = 10.0) -> float:
    return lab.wait_until(
        lambda: state_of(lab, node) == state, timeout, what=f"{node.name} in {state}"
    )


def log_of(lab: Lab, node: Node) -> str:
    with contextlib.suppress(OSError):
        return (run_dir(lab, node) / "hagate.log").read_text()
    return ""


def wait_ready(lab: Lab, node: Node, timeout: float = 10.0) -> None:
    """Until the daemon answers on its status socket."""

    def ready() -> bool:
        try:
            status(lab, node)
        except StatusError:
            return False
        return True

    lab.wait_until(ready, timeout, what=f"hagate on {node.name}")


def holders(lab: Lab, nodes: Sequence[Node], ip: str = VIP) -> list[str]:
    return [n.name for n in nodes if n.has_address(ip)]


def wait_single_holder(
    lab: Lab, nodes: Sequence[Node], who: str, timeout: float, ip: str = VIP
) -> float:
    return lab.wait_until(
        lambda: holders(lab, nodes, ip) == [who], timeout, what=f"{ip} on {who} only"
    )


def http_get(node: Node, url: str) -> str:
    """GET ``url`` from inside the node's namespace (curl-free: python -c)."""
    import sys

    code = (
        "import urllib.request,sys;"
        f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    return node.run([sys.executable, "-c", code]).stdout


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def poll(pred: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def delete_eth0(node: Node) -> None:
    """``ip link del eth0`` inside the node (its bridge-side peer goes with it)."""
    shell.ip("-n", node.netns, "link", "del", node.ifname)


def recreate_eth0(node: Node) -> float:
    """A new veth ``eth0`` with the node's address, plugged into the bridge again (a NIC
    reset, a VLAN rebuilt, a container restart); the node's ifindex/mac follow the new one.
    Returns ``time.monotonic()`` just before the link gets its carrier (the bridge side up)."""
    ns, br, port = node.netns, node.bridge_netns, node.bridge_port
    cmds = [
        f"link add {node.ifname} type veth peer name {port} netns {br}",
        f"addr add {node.address} dev {node.ifname}",
        f"link set {node.ifname} up",
    ]
    shell.run(["ip", "-n", ns, "-b", "-"], input="\n".join(cmds) + "\n")
    link = json.loads(shell.ip("-n", ns, "-j", "link", "show", "dev", node.ifname).stdout)[0]
    node.ifindex = int(link["ifindex"])
    node.mac = str(link["address"])
    t_up = time.monotonic()
    shell.ip("-n", br, "link", "set", port, "master", "br0", "up")
    return t_up
