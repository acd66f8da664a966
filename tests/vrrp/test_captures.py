"""Known answers from real keepalived 2.2.7 traffic in shared/captures (see its README.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, Advert, AuthType, IPAddress
from hagate.vrrp.packet import DiscardReason, PacketError, decode, decode_ip, encode
from hagate.vrrp.receive import Accepted, ReceiveParams, UnicastPeer, check_packet

CAPTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "captures"

pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason=f"no captures at {CAPTURES}")

A5 = IPv4Address("10.1.1.5")
A10 = IPv4Address("10.1.1.10")
LL_HIGH = IPv6Address("fe80::9012:a0ff:fe1f:3026")
LL_LOW = IPv6Address("fe80::a0c3:54ff:fe56:8b3")
VIPS4 = (IPv4Address("10.1.1.100"), IPv4Address("10.1.1.101"))
VIPS6 = (IPv6Address("fd00::100"), IPv6Address("fd00::101"))

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806


@dataclass
class Frames:
    vrrp: list[tuple[IPAddress, IPAddress, int, bytes]]  # src, dst, ttl, VRRP message
    arp: int = 0
    other_ip: int = 0  # IPv6 ND/RS etc.: decode_ip says not_vrrp


def read_pcap(path: Path) -> list[bytes]:
    """Frames of a classic little-endian microsecond pcap with Ethernet link type."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4 and linktype == 1
    frames, off = [], 24
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def load(name: str) -> Frames:
    out = Frames([])
    for frame in read_pcap(CAPTURES / name):
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype == ETH_ARP:
            out.arp += 1
            continue
        assert ethertype in (ETH_IPV4, ETH_IPV6)
        try:
            ip = decode_ip(frame[14:])
        except PacketError as err:
            assert err.reason is DiscardReason.NOT_VRRP
            out.other_ip += 1
            continue
        out.vrrp.append((ip.src, ip.dst, ip.hop_limit, ip.payload))
    return out


# file -> version, addresses, [(src, dst, priority)] as `tcpdump -nn -vv -r FILE` shows them
V4_MCAST = [(A5, MULTICAST_V4, 250)] * 2 + [(A5, MULTICAST_V4, 0)]
V4_MCAST += [(A10, MULTICAST_V4, 200)] * 2 + [(A10, MULTICAST_V4, 0)]
V4_UNI = [(A5, A10, 250)] * 3 + [(A5, A10, 0)] + [(A10, A5, 200)] * 2 + [(A10, A5, 0)]
V6_MCAST = [(LL_HIGH, MULTICAST_V6, 250)] * 2 + [(LL_HIGH, MULTICAST_V6, 0)]
V6_MCAST += [(LL_LOW, MULTICAST_V6, 200)] * 2 + [(LL_LOW, MULTICAST_V6, 0)]
EXPECTED = {
    "vrrp-v2-multicast-pass.pcap": (2, VIPS4, V4_MCAST),
    "vrrp-v2-unicast-pass.pcap": (2, VIPS4, V4_UNI),
    "vrrp-v3-ipv4-multicast.pcap": (3, VIPS4, V4_MCAST),
    "vrrp-v3-ipv4-checksum-as-v2.pcap": (3, VIPS4, V4_MCAST),
    "vrrp-v3-ipv4-unicast.pcap": (3, VIPS4, V4_UNI),
    "vrrp-v3-ipv6-multicast.pcap": (3, VIPS6, V6_MCAST),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_decodes_to_tcpdump_fields_and_reencodes_exactly(name: str) -> None:
    version, vips, expected = EXPECTED[name]
    frames = load(name)
    got = []
    for src, dst, ttl, payload in frames.vrrp:
        advert = decode(payload, src, dst)
        assert ttl == 255
        assert advert.version == version and advert.vrid == 51
        assert advert.advert_int_cs == 100 and advert.addresses == vips
        if version == 2:
            assert (advert.auth_type, advert.auth_data) == (AuthType.PASS, b"secret12")
        assert encode(advert, src, dst) == payload
        got.append((src, dst, advert.priority))
    assert got == expected


def encode_len(version: int, vips: tuple[IPAddress, ...]) -> int:
    return 8 + len(vips[0].packed) * len(vips) + (8 if version == 2 else 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_message_lengths(name: str) -> None:
    version, vips, _ = EXPECTED[name]
    assert {len(p) for *_, p in load(name).vrrp} == {encode_len(version, vips)}


def test_skipped_frames_are_counted() -> None:
    assert load("vrrp-v2-unicast-pass.pcap").arp > 0
    assert load("vrrp-v3-ipv6-multicast.pcap").other_ip > 0  # unsolicited NAs


def test_checksum_as_v2_capture_really_has_the_pseudo_header() -> None:
    # keepalived 2.2.7 has no vrrp_v3_checksum_as_v2 (added in 2.2.8): the file is
    # byte-identical to the default-checksum capture, so it only decodes the standard way.
    as_v2 = load("vrrp-v3-ipv4-checksum-as-v2.pcap").vrrp
    default = load("vrrp-v3-ipv4-multicast.pcap").vrrp
    assert [p for *_, p in as_v2] == [p for *_, p in default]
    src, dst, _, payload = as_v2[0]
    with pytest.raises(PacketError) as err:
        decode(payload, src, dst, v3_checksum_as_v2=True)
    assert err.value.reason is DiscardReason.BAD_CHECKSUM


def params_for(name: str, me: IPAddress) -> ReceiveParams:
    version, vips, expected = EXPECTED[name]
    peers = tuple(UnicastPeer(s) for s, d, _ in expected if d == me) if "unicast" in name else ()
    if version == 2:
        return ReceiveParams(
            2, 51, 100, vips, AuthType.PASS, b"secret12", peers, check_unicast_src=True
        )
    return ReceiveParams(3, 51, 100, vips, unicast_peers=peers[:1], check_unicast_src=True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_receive_accepts_every_advert_for_its_instance(name: str) -> None:
    for src, dst, ttl, payload in load(name).vrrp:
        me = dst if not dst.is_multicast else (A10 if src == A5 else A5)
        result = check_packet(params_for(name, me), src, dst, ttl, payload)
        assert isinstance(result, Accepted), result
        assert result.notes == ()
        assert isinstance(result.advert, Advert)


def test_receive_rejects_capture_with_wrong_password_and_vrid() -> None:
    src, dst, ttl, payload = load("vrrp-v2-multicast-pass.pcap").vrrp[0]
    good = params_for("vrrp-v2-multicast-pass.pcap", A10)
    wrong_pw = ReceiveParams(2, 51, 100, VIPS4, AuthType.PASS, b"secret13")
    other_vrid = ReceiveParams(2, 52, 100, VIPS4, AuthType.PASS, b"secret12")
    assert isinstance(check_packet(good, src, dst, ttl, payload), Accepted)
    assert check_packet(wrong_pw, src, dst, ttl, payload).reason is (  # type: ignore[union-attr]
        DiscardReason.AUTH_PASSWORD_MISMATCH
    )
    assert check_packet(other_vrid, src, dst, ttl, payload).reason is (  # type: ignore[union-attr]
        DiscardReason.VRID_MISMATCH
    )
