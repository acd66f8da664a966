"""One cluster description -> N keepalived.conf files (node i master of VIP i, backup of the
others with rotated priorities), and the VIP a device uses, derived from its name alone.

The description (``cluster.toml``)::

    interface = "eth0"          # where the VIPs live on every node
    prefix = 24                 # VIP prefix length
    vrid_base = 51              # VIP i gets virtual_router_id vrid_base + i
    advert_int = 1              # seconds; below 1 needs vrrp_version = 3
    vrrp_version = 2
    auth_pass = "s3cret"        # optional: PASS authentication (keepalived's 8 characters)
    check = "/usr/local/bin/hagate gateway check"   # optional vrrp_script (lowers priority)

    [[node]]
    name = "node-1"
    address = "10.1.1.5"        # unicast source; every other node's address is a peer
    vip = "10.1.1.101"          # or vips = ["10.1.1.101", "10.1.1.111", ...]

Priorities: a VIP's owner first, then the other nodes in ring order (node i+1, i+2, ...); the
m-th VIP of a node starts that ring m places further on, so a node with k VIPs hands them to k
different survivors when it dies (+1/k of its load each, not all of it onto its ring
successor). On VIP j of one VIP per node, node i has ``TOP - ((i - j) mod N) * step``. A
failing check lowers a node by more than the whole ladder, so any healthy node beats it.
Pure: strings in, strings out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOP = 250  # below 255: no node is "address owner", every takeover follows the ladder


class LayoutError(ValueError):
    """A cluster description that cannot be used (message names file and key)."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    address: str
    vip: str
    more_vips: tuple[str, ...] = ()

    @property
    def vips(self) -> tuple[str, ...]:
        return (self.vip, *self.more_vips)


@dataclass(frozen=True, slots=True)
class Instance:
    """One vrrp_instance: the ``rank``-th VIP of node ``owner``."""

    owner: int
    rank: int
    vip: str


@dataclass(frozen=True, slots=True)
class Layout:
    nodes: tuple[NodeSpec, ...]
    interface: str = "eth0"
    prefix: int = 24
    vrid_base: int = 51
    advert_int: float = 1.0
    auth_pass: str = ""
    check: str = ""
    vrrp_version: int = 2  # 3 for sub-second advert_int (no PASS auth in v3)

    @property
    def step(self) -> int:
        return max(1, min(10, (TOP - 10) // max(1, len(self.nodes))))

    def instances(self) -> list[Instance]:
        """Every VIP: first each node's first VIP (in node order), then each one's second..."""
        most = max(len(n.vips) for n in self.nodes)
        return [
            Instance(i, m, n.vips[m])
            for m in range(most)
            for i, n in enumerate(self.nodes)
            if m < len(n.vips)
        ]

    def ladder(self, vip: int) -> list[int]:
        """Node indices in falling priority on VIP ``vip`` (an index into instances())."""
        inst = self.instances()[vip]
        n = len(self.nodes)
        others = [(inst.owner + 1 + t) % n for t in range(n - 1)]
        turn = inst.rank % max(1, n - 1)
        return [inst.owner, *others[turn:], *others[:turn]]

    def priority(self, node: int, vip: int) -> int:
        return TOP - self.ladder(vip).index(node) * self.step

    @property
    def check_weight(self) -> int:
        """Enough to drop a failing owner below the lowest healthy backup."""
        return -min(253, self.step * len(self.nodes) + 1)

    def vips(self) -> list[str]:
        return [inst.vip for inst in self.instances()]

    def master_of(self, vip: int, alive: set[str]) -> str | None:
        """Who holds VIP ``vip`` when exactly the nodes in ``alive`` run (checks passing)."""
        live = [i for i, n in enumerate(self.nodes) if n.name in alive]
        if not live:
            return None
        ladder = self.ladder(vip)
        return self.nodes[min(live, key=ladder.index)].name


def vip_for(device: str, vips: list[str]) -> str:
    """The VIP ``device`` dials: rendezvous hashing of its name over the VIPs.

    Stable and computable anywhere (the agent's config, the docs, `hagate cluster vip`);
    adding a VIP moves only the devices that the new VIP wins, about 1/N of them.
    """
    if not vips:
        raise LayoutError("no VIPs")

    def weight(vip: str) -> bytes:
        return hashlib.sha256(f"{device}\0{vip}".encode()).digest()

    return max(vips, key=weight)


_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_PASS = re.compile(r"^[!-~]{1,8}$")


def load_layout(path: Path) -> Layout:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{path}: {exc}") from None
    return parse_layout(data, str(path))


def parse_layout(data: dict[str, Any], name: str = "cluster.toml") -> Layout:
    known = {"interface", "prefix", "vrid_base", "advert_int", "auth_pass", "check", "node"}
    known.add("vrrp_version")
    unknown = set(data) - known
    if unknown:
        raise LayoutError(f"{name}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    raw_nodes = data.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise LayoutError(f"{name}: at least one [[node]] (name, address, vip) is needed")
    nodes: list[NodeSpec] = []
    for k, raw in enumerate(raw_nodes, 1):
        w = f"{name}: node {k}: "
        if not isinstance(raw, dict) or set(raw) - {"name", "address", "vip", "vips"}:
            raise LayoutError(f"{w}expected name, address and vip (or vips) only")
        listed = raw.get("vips")
        if listed is not None:
            if "vip" in raw or not isinstance(listed, list) or not listed:
                raise LayoutError(f"{w}vips: a non-empty list of addresses, instead of vip")
            raw = {**raw, "vip": listed[0]}
        values = [raw.get(key) for key in ("name", "address", "vip")]
        if not all(isinstance(v, str) and v for v in values):
            raise LayoutError(f"{w}name, address and vip are required strings")
        nname, address, vip = (str(v) for v in values)
        if not _NAME.match(nname):
            raise LayoutError(f"{w}name {nname!r}: a-z, 0-9 and '-', at most 32")
        more = [str(v) for v in (listed or [])[1:]]
        for label, text in (("address", address), ("vip", vip), *(("vips", v) for v in more)):
            try:
                ipaddress.IPv4Address(text)
            except ValueError:
                raise LayoutError(f"{w}{label} {text!r} is not an IPv4 address") from None
        nodes.append(NodeSpec(nname, address, vip, tuple(more)))
    checks: tuple[tuple[str, list[str]], ...] = (
        ("name", [n.name for n in nodes]),
        ("address", [n.address for n in nodes]),
        ("vip", [v for n in nodes for v in n.vips] + [n.address for n in nodes]),
    )
    for label, used in checks:
        dup = {v for v in used if used.count(v) > 1}
        if dup:
            raise LayoutError(f"{name}: {label} used twice: {sorted(dup)}")
    interface = data.get("interface", "eth0")
    prefix = data.get("prefix", 24)
    vrid_base = data.get("vrid_base", 51)
    advert = data.get("advert_int", 1)
    auth = data.get("auth_pass", "")
    check = data.get("check", "")
    if not isinstance(interface, str) or not _IFNAME.match(interface):
        raise LayoutError(f"{name}: interface: an interface name, got {interface!r}")
    if not isinstance(prefix, int) or not 1 <= prefix <= 32:
        raise LayoutError(f"{name}: prefix: 1 to 32, got {prefix!r}")
    count = sum(len(n.vips) for n in nodes)
    if not isinstance(vrid_base, int) or not 1 <= vrid_base <= 256 - count:
        raise LayoutError(f"{name}: vrid_base: 1 to {256 - count} for {count} VIPs")
    if not isinstance(advert, int | float) or isinstance(advert, bool) or not 0 < advert <= 255:
        raise LayoutError(f"{name}: advert_int: seconds, 0 < advert_int <= 255")
    if not isinstance(auth, str) or (auth and not _PASS.match(auth)):
        raise LayoutError(f"{name}: auth_pass: 1 to 8 printable characters")
    if not isinstance(check, str) or '"' in check or "\n" in check:
        raise LayoutError(f"{name}: check: a command line without quotes")
    version = data.get("vrrp_version", 2)
    if version not in (2, 3):
        raise LayoutError(f"{name}: vrrp_version: 2 or 3, got {version!r}")
    if version == 2 and (advert < 1 or advert != int(advert)):
        raise LayoutError(f"{name}: advert_int: whole seconds with VRRPv2 (or vrrp_version = 3)")
    if version == 3 and auth:
        raise LayoutError(f"{name}: auth_pass: VRRPv3 has no authentication (RFC 9568)")
    return Layout(
        tuple(nodes), interface, prefix, vrid_base, float(advert), auth, check, int(version)
    )


def keepalived_conf(layout: Layout, node: int) -> str:
    """keepalived.conf of node ``node`` (0-based): one vrrp_instance per VIP."""
    me = layout.nodes[node]
    peers = [n.address for n in layout.nodes if n is not me]
    n = len(layout.nodes)
    lines = [
        f"# {me.name}: generated by `hagate cluster keepalived` from one cluster description",
        f"# ({n} nodes; node i is master of VIP i, priorities rotate). Do not edit by hand.",
        "global_defs {",
        f"    router_id {me.name}",
        "    enable_script_security",
        *([f"    vrrp_version {layout.vrrp_version}"] if layout.vrrp_version != 2 else []),
        "}",
        "",
    ]
    if layout.check:
        lines += [
            "vrrp_script chk_gateway {",
            f'    script "{layout.check}"',
            "    interval 1",
            f"    weight {layout.check_weight}",
            "    rise 2",
            "    fall 2",
            "}",
            "",
        ]
    advert = f"{layout.advert_int:g}"
    for j, inst in enumerate(layout.instances()):
        owner = layout.nodes[inst.owner]
        lines += [
            f"vrrp_instance VI_{j + 1} {{",
            f"    # VIP {inst.rank + 1} of {owner.name}",
            f"    state {'MASTER' if inst.owner == node else 'BACKUP'}",
            f"    interface {layout.interface}",
            f"    virtual_router_id {layout.vrid_base + j}",
            f"    priority {layout.priority(node, j)}",
            f"    advert_int {advert}",
            f"    unicast_src_ip {me.address}",
            "    unicast_peer {",
            *(f"        {p}" for p in peers),
            "    }",
        ]
        if layout.auth_pass:
            lines += [
                "    authentication {",
                "        auth_type PASS",
                f"        auth_pass {layout.auth_pass}",
                "    }",
            ]
        lines += ["    virtual_ipaddress {", f"        {inst.vip}/{layout.prefix}", "    }"]
        if layout.check:
            lines += ["    track_script {", "        chk_gateway", "    }"]
        lines += ["}", ""]
    return "\n".join(lines)


def write_all(layout: Layout, directory: Path) -> list[Path]:
    """``DIR/<node>.conf`` for every node; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, node in enumerate(layout.nodes):
        path = directory / f"{node.name}.conf"
        path.write_text(keepalived_conf(layout, i))
        out.append(path)
    return out
