"""scapy's VRRP/VRRPv3 layers as an independent implementation: both directions agree."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

pytest.importorskip("scapy")

from scapy.layers.inet import IP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum as scapy_checksum

from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, Advert, AuthType
from hagate.vrrp.packet import decode, decode_ip, encode

SRC4 = IPv4Address("192.0.2.7")
UNI4 = IPv4Address("192.0.2.8")
SRC6 = IPv6Address("fe80::7")
VIPS4 = [IPv4Address("198.51.100.1"), IPv4Address("198.51.100.2"), IPv4Address("203.0.113.9")]
VIPS6 = [IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")]


@pytest.mark.parametrize(("priority", "adv", "auth"), [(100, 1, 0), (254, 3, 1), (0, 255, 0)])
def test_v2_scapy_builds_we_decode(priority: int, adv: int, auth: int) -> None:
    pw = b"hagate!!" if auth else bytes(8)
    raw = bytes(
        IP(src=str(SRC4), dst=str(MULTICAST_V4), ttl=255)
        / VRRP(
            vrid=42,
            priority=priority,
            adv=adv,
            authtype=auth,
            addrlist=[str(a) for a in VIPS4],
            auth1=int.from_bytes(pw[:4], "big"),
            auth2=int.from_bytes(pw[4:], "big"),
        )
    )
    ip = decode_ip(raw)
    advert = decode(ip.payload, ip.src, ip.dst)
    assert advert == Advert(
        2, 42, priority, adv * 100, tuple(VIPS4), AuthType(auth), pw if auth else b""
    )
    assert encode(advert, ip.src, ip.dst) == ip.payload


def test_v2_we_build_scapy_decodes() -> None:
    advert = Advert(2, 9, 150, 200, tuple(VIPS4), AuthType.PASS, b"pw")
    wire = encode(advert, SRC4, MULTICAST_V4)
    parsed = VRRP(wire)
    assert (parsed.version, parsed.type, parsed.vrid, parsed.priority) == (2, 1, 9, 150)
    assert (parsed.adv, parsed.authtype, parsed.ipcount) == (2, 1, 3)
    assert parsed.addrlist == [str(a) for a in VIPS4]
    assert parsed.chksum == scapy_checksum(wire[:6] + b"\0\0" + wire[8:])


@pytest.mark.parametrize("dst", [MULTICAST_V4, UNI4])
@pytest.mark.parametrize(("priority", "adv"), [(100, 100), (255, 4095), (0, 1)])
def test_v3_ipv4_both_ways(dst: IPv4Address, priority: int, adv: int) -> None:
    raw = bytes(
        IP(src=str(SRC4), dst=str(dst), ttl=255)
        / VRRPv3(vrid=200, priority=priority, adv=adv, addrlist=[str(a) for a in VIPS4])
    )
    ip = decode_ip(raw)
    advert = decode(ip.payload, ip.src, ip.dst)
    assert advert == Advert(3, 200, priority, adv, tuple(VIPS4))
    assert encode(advert, SRC4, dst) == ip.payload
    # we build, scapy parses and its pseudo-header checksum agrees with ours
    wire = encode(advert, SRC4, dst)
    parsed = IP(bytes(IP(src=str(SRC4), dst=str(dst)) / VRRPv3(wire)))[VRRPv3]
    assert (parsed.vrid, parsed.priority, parsed.adv) == (200, priority, adv)
    assert parsed.addrlist == [str(a) for a in VIPS4]
    zeroed = wire[:6] + b"\0\0" + wire[8:]
    assert parsed.chksum == in4_chksum(112, IP(src=str(SRC4), dst=str(dst)), zeroed)


@pytest.mark.parametrize(("priority", "adv"), [(100, 100), (1, 50)])
def test_v3_ipv6_both_ways(priority: int, adv: int) -> None:
    raw = bytes(
        IPv6(src=str(SRC6), dst=str(MULTICAST_V6), hlim=255)
        / VRRPv3(vrid=7, priority=priority, adv=adv, addrlist=[str(a) for a in VIPS6])
    )
    ip = decode_ip(raw)
    assert ip.hop_limit == 255
    advert = decode(ip.payload, ip.src, ip.dst)
    assert advert == Advert(3, 7, priority, adv, tuple(VIPS6))
    wire = encode(advert, SRC6, MULTICAST_V6)
    assert wire == ip.payload
    parsed = IPv6(bytes(IPv6(src=str(SRC6), dst=str(MULTICAST_V6)) / VRRPv3(wire)))[VRRPv3]
    assert parsed.addrlist == [str(a) for a in VIPS6]
    assert (parsed.vrid, parsed.priority, parsed.adv) == (7, priority, adv)
    zeroed = wire[:6] + b"\0\0" + wire[8:]
    assert parsed.chksum == in6_chksum(112, IPv6(src=str(SRC6), dst=str(MULTICAST_V6)), zeroed)


def test_v3_checksum_as_v2_matches_plain_rfc1071() -> None:
    advert = Advert(3, 5, 100, 100, tuple(VIPS4))
    wire = encode(advert, SRC4, MULTICAST_V4, v3_checksum_as_v2=True)
    assert int.from_bytes(wire[6:8], "big") == scapy_checksum(wire[:6] + b"\0\0" + wire[8:])
