"""Codec known answers and malformed-input handling (bytes pinned from keepalived 2.2.7)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, Advert, AuthType
from hagate.vrrp.packet import DiscardReason, PacketError, decode, decode_ip, encode

A5 = IPv4Address("10.1.1.5")
A10 = IPv4Address("10.1.1.10")
VIPS4 = (IPv4Address("10.1.1.100"), IPv4Address("10.1.1.101"))
VIPS6 = (IPv6Address("fd00::100"), IPv6Address("fd00::101"))
LL = IPv6Address("fe80::9012:a0ff:fe1f:3026")

# keepalived 2.2.7 on the wire (tcpdump -x of /work/shared/captures)
V2_PASS = bytes.fromhex("2133fa0201015f7f0a0101640a0101657365637265743132")
V3_MCAST = bytes.fromhex("3133fa020064d2010a0101640a010165")
V3_MCAST_PRIO0 = bytes.fromhex("313300020064cc020a0101640a010165")
V3_UNICAST = bytes.fromhex("3133fa020064a7090a0101640a010165")  # 10.1.1.5 -> 10.1.1.10
V3_V6 = bytes.fromhex(
    "3133fa0200647adcfd000000000000000000000000000100fd000000000000000000000000000101"
)
V2_IP_PACKET = bytes.fromhex("45c0002c00010000ff70cf880a010105e0000012") + V2_PASS


def test_v2_pass_known_answer() -> None:
    advert = decode(V2_PASS, A5, MULTICAST_V4)
    assert advert == Advert(2, 51, 250, 100, VIPS4, AuthType.PASS, b"secret12")
    assert encode(advert, A5, MULTICAST_V4) == V2_PASS


def test_v2_pass_short_password_is_nul_padded() -> None:
    advert = Advert(2, 51, 250, 100, VIPS4, AuthType.PASS, b"abc")
    wire = encode(advert, A5, MULTICAST_V4)
    assert wire.endswith(b"abc\x00\x00\x00\x00\x00")
    assert decode(wire, A5, MULTICAST_V4).auth_data == b"abc\x00\x00\x00\x00\x00"


def test_v2_no_auth_round_trips_to_empty_auth_data() -> None:
    advert = Advert(2, 7, 100, 300, VIPS4)
    wire = encode(advert, A5, MULTICAST_V4)
    assert wire[4:6] == b"\x00\x03"  # auth type 0, 3 seconds
    assert decode(wire, A5, MULTICAST_V4) == advert


@pytest.mark.parametrize(
    ("wire", "dst", "priority"),
    [(V3_MCAST, MULTICAST_V4, 250), (V3_MCAST_PRIO0, MULTICAST_V4, 0), (V3_UNICAST, A10, 250)],
)
def test_v3_ipv4_known_answers(wire: bytes, dst: IPv4Address, priority: int) -> None:
    advert = decode(wire, A5, dst)
    assert advert == Advert(3, 51, priority, 100, VIPS4)
    assert encode(advert, A5, dst) == wire


def test_v3_unicast_pseudo_header_uses_real_destination() -> None:
    with pytest.raises(PacketError) as err:
        decode(V3_UNICAST, A5, MULTICAST_V4)
    assert err.value.reason is DiscardReason.BAD_CHECKSUM


def test_v3_ipv6_known_answer() -> None:
    advert = decode(V3_V6, LL, MULTICAST_V6)
    assert advert == Advert(3, 51, 250, 100, VIPS6)
    assert encode(advert, LL, MULTICAST_V6) == V3_V6


def test_v3_checksum_as_v2_omits_pseudo_header() -> None:
    advert = Advert(3, 51, 250, 100, VIPS4)
    plain = encode(advert, A5, MULTICAST_V4, v3_checksum_as_v2=True)
    assert plain[:6] == V3_MCAST[:6] and plain[8:] == V3_MCAST[8:]
    assert plain[6:8] == bytes.fromhex("bd9a")  # RFC 1071 over the message alone
    assert decode(plain, A5, MULTICAST_V4, v3_checksum_as_v2=True) == advert
    with pytest.raises(PacketError):
        decode(plain, A5, MULTICAST_V4)
    with pytest.raises(PacketError):
        decode(V3_MCAST, A5, MULTICAST_V4, v3_checksum_as_v2=True)


def test_checksum_as_v2_does_not_apply_to_ipv6() -> None:
    assert decode(V3_V6, LL, MULTICAST_V6, v3_checksum_as_v2=True).priority == 250


def test_v3_reserved_bits_ignored() -> None:
    wire = bytearray(V3_MCAST)
    wire[4] |= 0xF0
    # one's complement: adding 0xF000 to a word subtracts it from the checksum
    csum = int.from_bytes(wire[6:8], "big") + 0x0FFF
    wire[6:8] = ((csum & 0xFFFF) + (csum >> 16)).to_bytes(2, "big")
    assert decode(bytes(wire), A5, MULTICAST_V4).advert_int_cs == 100


def test_keepalived_v2_over_ipv6_has_no_auth_data() -> None:
    advert = Advert(2, 9, 100, 100, VIPS6, AuthType.NONE)
    wire = encode(advert, LL, MULTICAST_V6)
    assert len(wire) == 8 + 32
    assert decode(wire, LL, MULTICAST_V6) == advert


def test_decode_ip_v4_strips_header_and_padding() -> None:
    ip = decode_ip(V2_IP_PACKET + bytes(16))  # Ethernet minimum-frame padding
    assert ip == (A5, MULTICAST_V4, 255, V2_PASS)


def test_decode_ip_v6() -> None:
    header = bytes.fromhex("6c00ffef") + len(V3_V6).to_bytes(2, "big") + bytes([112, 255])
    ip = decode_ip(memoryview(header + LL.packed + MULTICAST_V6.packed + V3_V6))
    assert ip == (LL, MULTICAST_V6, 255, V3_V6)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", DiscardReason.BAD_IP_HEADER),
        (V2_IP_PACKET[:19], DiscardReason.BAD_IP_HEADER),
        (V2_IP_PACKET[:30], DiscardReason.BAD_IP_HEADER),  # total length 44 > 30
        (b"\x44" + V2_IP_PACKET[1:], DiscardReason.BAD_IP_HEADER),  # ihl 16 < 20
        (V2_IP_PACKET[:6] + b"\x20\x00" + V2_IP_PACKET[8:], DiscardReason.BAD_IP_HEADER),  # MF
        (V2_IP_PACKET[:9] + b"\x33" + V2_IP_PACKET[10:], DiscardReason.NOT_VRRP),  # AH
        (b"\x50" + bytes(40), DiscardReason.NOT_VRRP),
        (b"\x60" + bytes(30), DiscardReason.BAD_IP_HEADER),
        (b"\x60\0\0\0\0\x10\x70\xff" + bytes(32), DiscardReason.BAD_IP_HEADER),
        (b"\x60\0\0\0\0\0\x3a\xff" + bytes(32), DiscardReason.NOT_VRRP),
    ],
)
def test_decode_ip_rejects(packet: bytes, reason: DiscardReason) -> None:
    with pytest.raises(PacketError) as err:
        decode_ip(packet)
    assert err.value.reason is reason


def _with_checksum(body: bytes) -> bytes:
    """Fix up a v2 checksum so that only the intended defect remains."""
    from hagate.vrrp import checksum

    body = body[:6] + b"\0\0" + body[8:]
    return body[:6] + checksum.finish(checksum.raw_sum(body)).to_bytes(2, "big") + body[8:]


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (V2_PASS[:7], DiscardReason.TOO_SHORT),
        (V2_PASS[:8] + b"secret1", DiscardReason.TOO_SHORT),  # v2 without room for auth
        (_with_checksum(b"\x11" + V2_PASS[1:]), DiscardReason.BAD_VERSION),
        (_with_checksum(b"\x41" + V2_PASS[1:]), DiscardReason.BAD_VERSION),
        (_with_checksum(b"\x22" + V2_PASS[1:]), DiscardReason.BAD_TYPE),
        (_with_checksum(V2_PASS[:3] + b"\x03" + V2_PASS[4:]), DiscardReason.LENGTH_MISMATCH),
        (_with_checksum(V2_PASS + b"\0\0"), DiscardReason.LENGTH_MISMATCH),
        (V2_PASS[:-1] + b"3", DiscardReason.BAD_CHECKSUM),
        (_with_checksum(V2_PASS[:4] + b"\x03" + V2_PASS[5:]), DiscardReason.INVALID_AUTH_TYPE),
    ],
)
def test_decode_rejects(wire: bytes, reason: DiscardReason) -> None:
    with pytest.raises(PacketError) as err:
        decode(wire, A5, MULTICAST_V4)
    assert err.value.reason is reason
    assert err.value.detail


@pytest.mark.parametrize(
    ("advert", "src", "dst"),
    [
        (Advert(3, 0, 100, 100, VIPS4), A5, MULTICAST_V4),
        (Advert(3, 256, 100, 100, VIPS4), A5, MULTICAST_V4),
        (Advert(3, 1, 256, 100, VIPS4), A5, MULTICAST_V4),
        (Advert(3, 1, 100, 4096, VIPS4), A5, MULTICAST_V4),
        (Advert(3, 1, 100, 100, VIPS4 * 128), A5, MULTICAST_V4),
        (Advert(3, 1, 100, 100, VIPS6), A5, MULTICAST_V4),
        (Advert(3, 1, 100, 100, VIPS4), A5, MULTICAST_V6),
        (Advert(3, 1, 100, 100, VIPS4, AuthType.PASS, b"x"), A5, MULTICAST_V4),
        (Advert(2, 1, 100, 150, VIPS4), A5, MULTICAST_V4),
        (Advert(2, 1, 100, 25600, VIPS4), A5, MULTICAST_V4),
        (Advert(2, 1, 100, 100, VIPS4, AuthType.PASS, b"123456789"), A5, MULTICAST_V4),
        (Advert(2, 1, 100, 100, VIPS6, AuthType.PASS, b"x"), LL, MULTICAST_V6),
        (Advert(4, 1, 100, 100, VIPS4), A5, MULTICAST_V4),
    ],
)
def test_encode_rejects_unencodable(advert: Advert, src: object, dst: object) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        encode(advert, ip_address(str(src)), ip_address(str(dst)))


def test_discard_reason_names_are_stable_snake_case() -> None:
    for reason in DiscardReason:
        assert reason.value == reason.name.lower() or reason.value.islower()
        assert " " not in reason.value
    assert DiscardReason.VRID_MISMATCH.not_for_us
    assert not DiscardReason.BAD_CHECKSUM.not_for_us
