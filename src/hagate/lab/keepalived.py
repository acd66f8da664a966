"""keepalived.conf text for lab clusters (read by keepalived and by `hagate vrrp` alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hagate.lab.errors import LabError


@dataclass(frozen=True, slots=True)
class Instance:
    """One vrrp_instance block."""

    name: str
    vrid: int
    priority: int
    vips: Sequence[str]
    advert_int: float = 1.0
    version: int = 2
    state: str = "BACKUP"
    interface: str = "eth0"
    unicast_src: str | None = None
    unicast_peers: Sequence[str] = field(default_factory=tuple)

    def render(self) -> str:
        if self.version not in (2, 3):
            raise LabError(f"VRRP version must be 2 or 3, not {self.version}")
        if self.version == 2 and self.advert_int != int(self.advert_int):
            # RFC 3768 §5.3.7: the v2 Adver Int is in whole seconds
            raise LabError(f"VRRPv2 advert_int must be whole seconds, not {self.advert_int:g}")
        lines = [
            f"vrrp_instance {self.name} {{",
            f"    state {self.state}",
            f"    interface {self.interface}",
            f"    virtual_router_id {self.vrid}",
            f"    priority {self.priority}",
            f"    advert_int {self.advert_int:g}",
            f"    version {self.version}",
        ]
        if self.unicast_src:
            lines.append(f"    unicast_src_ip {self.unicast_src}")
        if self.unicast_peers:
            lines.append("    unicast_peer {")
            lines += [f"        {peer}" for peer in self.unicast_peers]
            lines.append("    }")
        lines.append("    virtual_ipaddress {")
        lines += [f"        {vip} dev {self.interface}" for vip in self.vips]
        lines += ["    }", "}"]
        return "\n".join(lines) + "\n"


def render(router_id: str, instances: Sequence[Instance]) -> str:
    """A whole keepalived.conf: global_defs plus the instances."""
    head = f"global_defs {{\n    router_id {router_id}\n}}\n"
    return head + "".join(i.render() for i in instances)


def pair(
    *,
    version: int,
    advert_int: float,
    vips: Sequence[str],
    unicast: bool,
    nodes: Sequence[tuple[str, str, int]],
    count: int = 1,
    first_vrid: int = 51,
) -> dict[str, str]:
    """Config per node for a cluster: ``nodes`` are (name, address, priority).

    ``count`` > 1 gives that many instances (VRIDs from ``first_vrid``), instance ``i``
    protecting ``vips[i]``.
    """
    if len(vips) < count:
        raise LabError(f"{count} instances need {count} VIPs, got {len(vips)}")
    out = {}
    for name, address, priority in nodes:
        peers = [a for n, a, _ in nodes if n != name] if unicast else []
        instances = [
            Instance(
                name=f"VI_{i + 1}",
                vrid=first_vrid + i,
                priority=priority,
                vips=[vips[i]],
                advert_int=advert_int,
                version=version,
                unicast_src=address if unicast else None,
                unicast_peers=peers,
            )
            for i in range(count)
        ]
        out[name] = render(name, instances)
    return out


def master_down_interval(version: int, advert_int: float, priority: int) -> float:
    """Seconds a backup waits without adverts before it takes over.

    RFC 3768 §6.1: 3 * Advertisement_Interval + Skew_Time, Skew_Time = (256 - Priority) / 256.
    RFC 9568 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256.
    """
    skew = (256 - priority) / 256 * (advert_int if version == 3 else 1.0)
    return 3 * advert_int + skew
