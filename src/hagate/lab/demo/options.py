"""The demo's options, checked before anything is created."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from hagate.lab.demo.configs import ClusterPlan, VrrpImpl
from hagate.lab.demo.topology import NODE1, NODE2

MAX_DEVICES = 20_000  # a fleet on this machine: its certificates, namespaces, processes


class DemoError(Exception):
    """The demo cannot run or failed; the message says why (no traceback)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    advert_int: float = 1.0
    vrrp_version: int = 2
    keepalived: bool = False  # node-2 runs Debian's keepalived: the mixed cluster
    sticky: bool = False  # both nodes BACKUP + nopreempt: node-1's return changes nothing
    keep: bool = False
    out: Path = Path("hagate-demo")
    prefix: str = "hgd"
    rate: float = 20.0  # user requests per second
    plot: bool = True
    restore: bool = True  # bring node-1 back after the failover
    devices: int = 0  # a fleet of idle devices besides the demo's own (0: none)

    def check(self) -> None:
        """Raise DemoError for options that cannot work (RFC limits on the advert interval)."""
        if self.vrrp_version not in (2, 3):
            raise DemoError(f"--vrrp-version must be 2 or 3, not {self.vrrp_version}")
        if self.vrrp_version == 2:
            # RFC 3768 §5.3.7: Adver Int is whole seconds, 1..255
            if self.advert_int != int(self.advert_int) or not 1 <= self.advert_int <= 255:
                raise DemoError(
                    f"VRRPv2 advert_int is whole seconds 1-255, not {self.advert_int:g} "
                    "(use --vrrp-version 3 for sub-second adverts)"
                )
        else:
            # RFC 9568 §5.2.7: Max Adver Int is 12 bits of centiseconds
            cs = round(self.advert_int * 100)
            if abs(cs - self.advert_int * 100) > 1e-6 or not 1 <= cs <= 4095:
                raise DemoError(
                    f"VRRPv3 advert_int is 0.01-40.95 s in steps of 0.01, not {self.advert_int:g}"
                )
        if self.advert_int > 10:
            raise DemoError("the demo needs advert_int <= 10 s to finish in reasonable time")
        if not 1 <= self.rate <= 200:
            raise DemoError(f"--rate must be 1-200 requests per second, not {self.rate:g}")
        if not 0 <= self.devices <= MAX_DEVICES:
            raise DemoError(f"--devices must be 0-{MAX_DEVICES:,}, not {self.devices}")
        if not re.match(r"^[a-z][a-z0-9]{0,7}$", self.prefix):
            raise DemoError(f"--prefix must be 1-8 lowercase letters/digits, not {self.prefix!r}")

    @property
    def plan(self) -> ClusterPlan:
        return ClusterPlan(self.advert_int, self.vrrp_version, self.sticky)

    @property
    def impls(self) -> dict[str, VrrpImpl]:
        node2 = VrrpImpl.KEEPALIVED if self.keepalived else VrrpImpl.HAGATE
        return {NODE1.key: VrrpImpl.HAGATE, NODE2.key: node2}

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data
