"""nftables rule sets that a lab node applies in its own namespace (no netem on this kernel).

The tables use the netdev family on the node's interface, so they drop every frame (ARP,
IPv4, IPv6, VRRP) while the link itself stays up.
"""

from __future__ import annotations

from enum import StrEnum

from hagate.lab.errors import LabError

PARTITION_TABLE = "hagate_partition"
LOSS_TABLE = "hagate_loss"


class Direction(StrEnum):
    EGRESS = "egress"
    INGRESS = "ingress"
    BOTH = "both"


def _hooks(direction: Direction) -> list[str]:
    return ["ingress", "egress"] if direction is Direction.BOTH else [direction.value]


def _table(name: str, ifname: str, direction: Direction, rule: str) -> str:
    chains = "".join(
        f'  chain {hook} {{ type filter hook {hook} device "{ifname}" priority -500; '
        f"policy accept; {rule} }}\n"
        for hook in _hooks(direction)
    )
    # "add" then "delete" makes the script work whether or not the table exists yet.
    return f"{delete_rules(name)}table netdev {name} {{\n{chains}}}\n"


def partition_rules(ifname: str) -> str:
    """Drop every frame in and out of ``ifname``."""
    return _table(PARTITION_TABLE, ifname, Direction.BOTH, "drop;")


def loss_rules(ifname: str, percent: float, direction: str) -> str:
    """Drop about ``percent`` % of frames at random in the given direction."""
    try:
        where = Direction(direction)
    except ValueError:
        raise LabError(f"direction must be egress, ingress or both, not {direction!r}") from None
    if not 0 <= percent <= 100:
        raise LabError(f"loss must be a percentage 0..100, not {percent!r}")
    # numgen random mod 1000 gives 0.1 % resolution.
    threshold = round(percent * 10)
    return _table(LOSS_TABLE, ifname, where, f"numgen random mod 1000 < {threshold} drop;")


def delete_rules(name: str) -> str:
    """Remove table ``name`` if present."""
    return f"add table netdev {name}\ndelete table netdev {name}\n"
