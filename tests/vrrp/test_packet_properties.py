"""Properties: decode(encode(x)) == x; no input makes decode raise anything but PacketError."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.vrrp.advert import Advert, AuthType, IPAddress
from hagate.vrrp.packet import PacketError, decode, decode_ip, encode
from hagate.vrrp.receive import Accepted, Discarded, ReceiveParams, UnicastPeer, check_packet

ipv4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
common = {"vrid": st.integers(1, 255), "priority": st.integers(0, 255)}


@st.composite
def v4_adverts(draw: st.DrawFn) -> tuple[Advert, IPAddress, IPAddress, bool]:
    version = draw(st.sampled_from([2, 3]))
    addrs = tuple(draw(st.lists(ipv4, max_size=20)))
    if version == 3:
        advert = Advert(
            3, draw(common["vrid"]), draw(common["priority"]), draw(st.integers(0, 4095)), addrs
        )
    else:
        auth = draw(st.sampled_from(AuthType))
        data = draw(st.binary(min_size=8, max_size=8))
        if auth is AuthType.NONE and data == bytes(8):
            data = b""
        advert = Advert(
            2,
            draw(common["vrid"]),
            draw(common["priority"]),
            draw(st.integers(0, 255)) * 100,
            addrs,
            auth,
            data,
        )
    return advert, draw(ipv4), draw(ipv4), draw(st.booleans())


@st.composite
def v6_adverts(draw: st.DrawFn) -> tuple[Advert, IPAddress, IPAddress, bool]:
    addrs = tuple(draw(st.lists(ipv6, max_size=10)))
    vrid, priority = draw(common["vrid"]), draw(common["priority"])
    if draw(st.booleans()):
        advert = Advert(3, vrid, priority, draw(st.integers(0, 4095)), addrs)
    else:  # keepalived's non-strict VRRPv2 over IPv6: no auth data on the wire
        auth = draw(st.sampled_from(AuthType))
        advert = Advert(2, vrid, priority, draw(st.integers(0, 255)) * 100, addrs, auth)
    return advert, draw(ipv6), draw(ipv6), draw(st.booleans())


@settings(max_examples=300)
@given(st.one_of(v4_adverts(), v6_adverts()))
def test_round_trip(case: tuple[Advert, IPAddress, IPAddress, bool]) -> None:
    advert, src, dst, as_v2 = case
    wire = encode(advert, src, dst, v3_checksum_as_v2=as_v2)
    assert decode(wire, src, dst, v3_checksum_as_v2=as_v2) == advert
    assert (
        encode(decode(wire, src, dst, v3_checksum_as_v2=as_v2), src, dst, v3_checksum_as_v2=as_v2)
        == wire
    )


@settings(max_examples=300)
@given(st.binary(max_size=120), ipv4, ipv4, st.booleans())
def test_random_bytes_only_raise_packet_error_v4(
    data: bytes, src: IPAddress, dst: IPAddress, as_v2: bool
) -> None:
    with contextlib.suppress(PacketError):
        decode(data, src, dst, v3_checksum_as_v2=as_v2)


@settings(max_examples=200)
@given(st.binary(max_size=200), ipv6, ipv6)
def test_random_bytes_only_raise_packet_error_v6(
    data: bytes, src: IPAddress, dst: IPAddress
) -> None:
    with contextlib.suppress(PacketError):
        decode(data, src, dst)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_random_ip_packets_only_raise_packet_error(data: bytes) -> None:
    try:
        ip = decode_ip(data)
    except PacketError:
        return
    assert len(ip.payload) <= len(data)


@settings(max_examples=300)
@given(
    v4_adverts(),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 30),
)
def test_mutated_adverts_only_raise_packet_error(
    case: tuple[Advert, IPAddress, IPAddress, bool], flips: list[tuple[int, int]], cut: int
) -> None:
    advert, src, dst, as_v2 = case
    wire = bytearray(encode(advert, src, dst, v3_checksum_as_v2=as_v2))
    for pos, value in flips:
        if pos < len(wire):
            wire[pos] = value
    mutated = bytes(wire[: len(wire) - cut] if cut < len(wire) else wire)
    with contextlib.suppress(PacketError):
        decode(mutated, src, dst, v3_checksum_as_v2=as_v2)
    params = ReceiveParams(
        version=advert.version,
        vrid=advert.vrid,
        vips=advert.addresses,
        unicast_peers=() if dst.is_multicast else (UnicastPeer(src, 1, 255),),
        v3_checksum_as_v2=as_v2,
    )
    assert isinstance(check_packet(params, src, dst, 255, mutated), Accepted | Discarded)


@settings(max_examples=200)
@given(v4_adverts(), st.integers(0, 15))
def test_single_bit_flips_in_checksummed_messages_are_caught(
    case: tuple[Advert, IPAddress, IPAddress, bool], bit: int
) -> None:
    advert, src, dst, as_v2 = case
    wire = bytearray(encode(advert, src, dst, v3_checksum_as_v2=as_v2))
    wire[6 + bit // 8] ^= 1 << (bit % 8)  # flip one checksum bit
    try:
        decode(bytes(wire), src, dst, v3_checksum_as_v2=as_v2)
    except PacketError as err:
        assert err.reason.value == "bad_checksum"
    else:
        raise AssertionError("corrupted checksum accepted")
