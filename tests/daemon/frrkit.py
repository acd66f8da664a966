"""FRR's vrrpd (Debian ``frr`` 8.4) as an independent VRRPv3 peer inside a lab node.

What FRR needs (seen in a netns lab): a macvlan per VRID carrying the virtual MAC
00:00:5e:00:01:VRID (IPv6 00:00:5e:00:02:VRID), mode bridge, addrgenmode random set by a
second ``ip link set``, with the VIP on it; FRR does not add addresses, it takes the
macvlan out of protodown while it is Master. zebra and vrrpd run by hand in the namespace,
each with its own pid file, zserv socket and vty socket directory, no vty TCP port, as the
``frr`` user (the lab's directories are opened for it). No VRRPv2 authentication.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from hagate.lab import Lab, Node

VRRPD = "/usr/lib/frr/vrrpd"
ZEBRA = "/usr/lib/frr/zebra"


def available() -> bool:
    return os.access(VRRPD, os.X_OK) and os.access(ZEBRA, os.X_OK)


@dataclass
class Frr:
    node: Node
    dir: Path
    vrid: int
    family: int

    @property
    def log(self) -> str:
        try:
            return (self.dir / "vrrpd.log").read_text(errors="replace")
        except OSError:
            return ""

    def masters(self) -> int:
        """How many times vrrpd has become Master so far."""
        return self.log.count("-> Master")

    def is_master(self) -> bool:
        lines = [ln for ln in self.log.splitlines() if "-> " in ln and "[CORE]" in ln]
        return bool(lines) and lines[-1].rstrip().endswith("-> Master")

    def kill(self) -> float:
        """SIGKILL vrrpd (a crash: no priority-0 advert); returns the time of the kill."""
        pid = int((self.dir / "vrrpd.pid").read_text().strip())
        t0 = time.monotonic()
        os.kill(pid, 9)
        return t0


def start_frr(
    lab: Lab, node: Node, *, priority: int, vip: str, vrid: int = 51, family: int = 4,
    interval_ms: int = 100,
) -> Frr:  # fmt: skip
    d = lab.node_dir(node) / "frr"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o777)
    for up in (lab.tmpdir, lab.node_dir(node)):  # let the frr user reach its directory
        os.chmod(up, 0o711)
    kind = 1 if family == 4 else 2
    mac = f"00:00:5e:00:0{kind}:{vrid:02x}"
    mv = f"vrrp{family}-{vrid}"
    plen = 24 if family == 4 else 64
    node.run(["ip", "link", "add", mv, "link", "eth0", "type", "macvlan", "mode", "bridge"])
    node.run(["ip", "link", "set", "dev", mv, "address", mac])
    node.run(["ip", "link", "set", "dev", mv, "addrgenmode", "random"])
    node.run(["ip", "addr", "add", f"{vip}/{plen}", "dev", mv])
    node.run(["ip", "link", "set", "dev", mv, "up"])
    (d / "zebra.conf").write_text("hostname zebra\n")
    keyword = "ip" if family == 4 else "ipv6"
    (d / "vrrpd.conf").write_text(
        f"hostname {node.name}\n"
        "interface eth0\n"
        f" vrrp {vrid} version 3\n"
        f" vrrp {vrid} priority {priority}\n"
        f" vrrp {vrid} advertisement-interval {interval_ms}\n"
        f" vrrp {vrid} {keyword} {vip}\n"
        "!\n"
    )
    common = ["-u", "frr", "-g", "frr", "-P", "0", "-z", str(d / "zserv.api")]
    common += ["--vty_socket", str(d)]
    node.spawn([ZEBRA, "-f", str(d / "zebra.conf"), "-i", str(d / "zebra.pid"), *common,
                "--log", f"file:{d / 'zebra.log'}"])  # fmt: skip
    deadline = time.monotonic() + 10
    while not (d / "zserv.api").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    node.spawn([VRRPD, "-f", str(d / "vrrpd.conf"), "-i", str(d / "vrrpd.pid"), *common,
                "--log", f"file:{d / 'vrrpd.log'}", "--log-level", "info"])  # fmt: skip
    frr = Frr(node, d, vrid, family)
    deadline = time.monotonic() + 10
    while "Virtual Router" not in frr.log and "->" not in frr.log:
        if time.monotonic() > deadline:
            raise AssertionError(f"vrrpd did not start:\n{frr.log[-2000:]}")
        time.sleep(0.05)
    return frr
