"""``use_vmac``: the instance's virtual MAC on a macvlan interface, as keepalived 2.2.7 does.

keepalived (vrrp_vmac.c, vrrp_if_config.c) creates a macvlan ``vrrp.VRID`` (or the name
given to ``use_vmac``) on the instance's interface, mode private, with the VRRP virtual
router MAC 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID, RFC 9568 §7.3), puts the VIPs on
it and sends adverts and gratuitous ARPs from it, so that the switches learn the virtual
MAC and a failover moves no MAC address in anyone's ARP cache. ``vmac_xmit_base`` sends
the adverts on the base interface instead (the VIPs and GARPs stay on the macvlan). An IPv6
instance sends from the macvlan's own link-local address (EUI-64 of the virtual MAC, DAD
off), as keepalived does.

Sysctls as keepalived sets them, written under /proc/sys/net of the daemon's own network
namespace only: on the macvlan arp_ignore=1, accept_local=1, rp_filter=0,
promote_secondaries=1; on the base interface arp_ignore=1 and arp_filter=1 (restored on
removal). pyroute2 builds the macvlan; it is imported only when a VMAC is configured, so it
costs nothing on the common start path.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

log = logging.getLogger("hagate.vrrp")

SYSCTL = Path("/proc/sys/net/ipv4/conf")
SYSCTL6 = Path("/proc/sys/net/ipv6/conf")
VMAC_SYSCTLS = {"arp_ignore": 1, "accept_local": 1, "rp_filter": 0, "promote_secondaries": 1}
BASE_SYSCTLS = {"arp_ignore": 1, "arp_filter": 1}
MACVLAN_MODE_PRIVATE = 1


class VmacError(RuntimeError):
    """The macvlan could not be made; the message says why."""


def default_name(vrid: int) -> str:
    """keepalived's default VMAC interface name."""
    return f"vrrp.{vrid}"


def vmac_address(vrid: int, family: int) -> bytes:
    """00:00:5e:00:01:VRID for IPv4, 00:00:5e:00:02:VRID for IPv6 (RFC 9568 §7.3)."""
    return bytes([0x00, 0x00, 0x5E, 0x00, 0x01 if family == 4 else 0x02, vrid])


def link_local(mac: bytes) -> IPv6Address:
    """The EUI-64 link-local address of ``mac`` (what the kernel gives the macvlan, and the
    one keepalived's make_link_local_address() computes): the IPv6 adverts' source."""
    eui = bytes([mac[0] ^ 0x02, *mac[1:3], 0xFF, 0xFE, *mac[3:6]])
    return IPv6Address(b"\xfe\x80" + bytes(6) + eui)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _read(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _write(path: Path, value: int) -> None:
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        log.warning("cannot set %s to %d: %s", path, value, exc.strerror or exc)


@dataclass
class Vmac:
    """One macvlan the daemon made (or adopted) for an instance."""

    name: str
    base: str
    vrid: int
    family: int
    mac: bytes
    xmit_base: bool = False
    saved: dict[str, int] = field(default_factory=dict)  # base sysctls before ours


def _iproute() -> object:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # its import resets it; per message
    return IPRoute()


def ensure(name: str, base: str, vrid: int, family: int, xmit_base: bool = False) -> Vmac:
    """Create (or keep, if it is already right) the macvlan ``name`` on ``base``, up."""
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    mac = vmac_address(vrid, family)
    ipr = _iproute()
    try:
        base_idx = ipr.link_lookup(ifname=base)  # type: ignore[attr-defined]
        if not base_idx:
            raise VmacError(f"use_vmac: interface {base} does not exist")
        found = ipr.link_lookup(ifname=name)  # type: ignore[attr-defined]
        if found:
            link = ipr.get_links(found[0])[0]  # type: ignore[attr-defined]
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            right = (
                kind == "macvlan"
                and link.get_attr("IFLA_LINK") == base_idx[0]
                and link.get_attr("IFLA_ADDRESS") == mac_text(mac)
            )
            if not right:  # keepalived: "VMAC conflicts with existing interface" -> remake
                log.warning("use_vmac: %s exists but is not our VMAC: re-creating it", name)
                ipr.link("del", index=found[0])  # type: ignore[attr-defined]
                found = []
        if not found:
            ipr.link(  # type: ignore[attr-defined]
                "add",
                ifname=name,
                kind="macvlan",
                link=base_idx[0],
                macvlan_mode="private",
                address=mac_text(mac),
            )
        vm = Vmac(name, base, vrid, family, mac, xmit_base)
        _set_sysctls(vm)
        ipr.link("set", ifname=name, state="up")  # type: ignore[attr-defined]
    except NetlinkError as exc:
        raise VmacError(f"use_vmac: cannot create {name} on {base}: {exc.args[-1]}") from None
    finally:
        ipr.close()  # type: ignore[attr-defined]
    log.info("use_vmac: %s on %s with MAC %s%s", name, base, mac_text(mac),
             ", adverts on the base interface" if xmit_base else "")  # fmt: skip
    return vm


def _set_sysctls(vm: Vmac) -> None:
    if vm.family == 6:  # the link-local is the adverts' source: usable at once, as keepalived
        _write(SYSCTL6 / vm.name / "accept_dad", 0)
    for key, value in VMAC_SYSCTLS.items():
        _write(SYSCTL / vm.name / key, value)
    for key, value in BASE_SYSCTLS.items():
        old = _read(SYSCTL / vm.base / key)
        if old is not None and old != value:
            vm.saved[key] = old
            _write(SYSCTL / vm.base / key, value)


def remove(vm: Vmac, others: list[Vmac] | tuple[Vmac, ...] = ()) -> None:
    """Delete the macvlan; restore the base sysctls unless another VMAC still uses it."""
    from pyroute2.netlink.exceptions import NetlinkError

    ipr = _iproute()
    try:
        found = ipr.link_lookup(ifname=vm.name)  # type: ignore[attr-defined]
        if found:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=found[0])  # type: ignore[attr-defined]
    finally:
        ipr.close()  # type: ignore[attr-defined]
    heir = next((o for o in others if o.base == vm.base), None)
    if heir is not None:  # the base is still in use: the last one out restores it
        heir.saved = {**vm.saved, **heir.saved}
        return
    for key, value in vm.saved.items():
        _write(SYSCTL / vm.base / key, value)
