"""Gratuitous ARP and unsolicited Neighbour Advertisements, built as keepalived builds them.

GARP (vrrp_arp.c): an ARP *request* to the broadcast MAC, sender = our MAC + VIP, target
MAC = broadcast, target IP = VIP. Unsolicited NA (vrrp_ndisc.c, RFC 4861 §4.4 / §7.2.6): from
the VIP to ff02::1 (MAC 33:33:00:00:00:01), hop limit 255, Override flag, a Target Link-Layer
Address option with our MAC. When they are sent (garp_master_delay, _repeat, _refresh) is the
state machine's business (RFC 3768 §6.4.2 / RFC 9568 §6.4.2 say "broadcast a gratuitous
ARP"); here we only build and send frames on an AF_PACKET socket.
"""

from __future__ import annotations

import logging
import socket
import struct
from ipaddress import IPv4Address, IPv6Address

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
BROADCAST_MAC = b"\xff" * 6
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ND_NEIGHBOR_ADVERT = 136
ND_NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
NDISC_HOPLIMIT = 255


def garp_frame(mac: bytes, vip: IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for ``vip`` from ``mac``."""
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, 0x0800, 6, 4, ARPOP_REQUEST)
    return eth + arp + mac + vip.packed + BROADCAST_MAC + vip.packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def na_frame(mac: bytes, vip: IPv6Address, router: bool = False) -> bytes:
    """The Ethernet frame of an unsolicited Neighbour Advertisement for ``vip``."""
    flags = ND_NA_FLAG_OVERRIDE | (0x80000000 if router else 0)
    option = struct.pack("!BB", ND_OPT_TARGET_LINKADDR, 1) + mac
    body = struct.pack("!I", flags) + vip.packed + option
    length = 4 + len(body)
    pseudo = vip.packed + ALL_NODES.packed + struct.pack("!I3xB", length, socket.IPPROTO_ICMPV6)
    csum = _checksum(pseudo + struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + body)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, csum) + body
    ip6 = (
        struct.pack("!IHBB", 6 << 28, length, socket.IPPROTO_ICMPV6, NDISC_HOPLIMIT)
        + vip.packed
        + ALL_NODES.packed
    )
    eth = ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + icmp


class GarpSender:
    """One AF_PACKET socket sending GARPs / NAs on any interface by index."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0)

    def send(self, ifname: str, mac: bytes, vip: IPv4Address | IPv6Address) -> bool:
        """Send one GARP (IPv4) or unsolicited NA (IPv6); False (logged) on error."""
        if isinstance(vip, IPv4Address):
            frame, proto = garp_frame(mac, vip), ETH_P_ARP
        else:
            frame, proto = na_frame(mac, vip), ETH_P_IPV6
        try:
            self._sock.sendto(frame, (ifname, proto, 0, ARPHRD_ETHER, BROADCAST_MAC))
        except OSError as exc:
            log.warning("%s: cannot send gratuitous ARP/NA for %s: %s", ifname, vip, exc.strerror)
            return False
        return True

    def close(self) -> None:
        self._sock.close()
