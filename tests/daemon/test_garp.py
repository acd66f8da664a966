"""Gratuitous ARP / unsolicited NA frames, checked with scapy's dissectors."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from hagate.daemon.garp import garp_frame, na_frame

MAC = bytes.fromhex("02aabbccdd01")


def test_garp_is_a_broadcast_request_for_the_vip() -> None:
    pkt = Ether(garp_frame(MAC, IPv4Address("10.1.1.100")))
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt.src == "02:aa:bb:cc:dd:01"
    arp = pkt[ARP]
    assert arp.op == 1
    assert (arp.hwsrc, arp.psrc) == ("02:aa:bb:cc:dd:01", "10.1.1.100")
    assert (arp.hwdst, arp.pdst) == ("ff:ff:ff:ff:ff:ff", "10.1.1.100")


def test_unsolicited_na() -> None:
    raw = na_frame(MAC, IPv6Address("fd00::100"))
    pkt = Ether(raw)
    assert pkt.dst == "33:33:00:00:00:01"
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == ("fd00::100", "ff02::1", 255)
    na = pkt[ICMPv6ND_NA]
    assert (na.O, na.S, na.R) == (1, 0, 0)
    assert na.tgt == "fd00::100"
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:aa:bb:cc:dd:01"
    # the checksum we computed is the one scapy computes from scratch
    ours = na.cksum
    del pkt[ICMPv6ND_NA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == ours
