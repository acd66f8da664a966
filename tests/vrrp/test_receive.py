"""Receive checks (RFC 3768 §7.1, RFC 9568 §7.1, keepalived vrrp_check_packet): one per reason."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, Advert, AuthType, IPAddress
from hagate.vrrp.packet import encode
from hagate.vrrp.receive import (
    Accepted,
    AddressCheck,
    Discarded,
    DiscardReason,
    Note,
    ReceiveParams,
    UnicastPeer,
    check_packet,
)

A5 = IPv4Address("10.1.1.5")
A10 = IPv4Address("10.1.1.10")
A99 = IPv4Address("10.1.1.99")
VIPS4 = (IPv4Address("10.1.1.100"), IPv4Address("10.1.1.101"))
VIPS6 = (IPv6Address("fd00::100"), IPv6Address("fd00::101"))
LL = IPv6Address("fe80::1")

V2 = ReceiveParams(
    version=2,
    vrid=51,
    advert_int_cs=100,
    vips=VIPS4,
    auth_type=AuthType.PASS,
    auth_pass=b"secret12",
)
V3 = ReceiveParams(version=3, vrid=51, vips=VIPS4)
V3_UNI = replace(V3, unicast_peers=(UnicastPeer(A5),))
V2_ADVERT = Advert(2, 51, 200, 100, VIPS4, AuthType.PASS, b"secret12")
V3_ADVERT = Advert(3, 51, 200, 100, VIPS4)


def run(
    params: ReceiveParams,
    advert: Advert,
    *,
    src: IPAddress = A5,
    dst: IPAddress = MULTICAST_V4,
    ttl: int | None = 255,
    as_v2: bool = False,
) -> Accepted | Discarded:
    return check_packet(params, src, dst, ttl, encode(advert, src, dst, v3_checksum_as_v2=as_v2))


def reason(result: Accepted | Discarded) -> DiscardReason:
    assert isinstance(result, Discarded), result
    assert result.detail
    return result.reason


def test_accepts_v2_and_v3() -> None:
    assert run(V2, V2_ADVERT) == Accepted(V2_ADVERT, ())
    assert run(V3, V3_ADVERT) == Accepted(V3_ADVERT, ())
    ipv6 = ReceiveParams(version=3, vrid=51, vips=VIPS6)
    advert6 = Advert(3, 51, 200, 100, VIPS6)
    assert run(ipv6, advert6, src=LL, dst=MULTICAST_V6) == Accepted(advert6, ())


def test_priority_zero_is_accepted() -> None:
    # keepalived counts pri_zero_rcvd and passes it on; the state machine acts on it
    result = run(V3, replace(V3_ADVERT, priority=0))
    assert isinstance(result, Accepted) and result.advert.priority == 0


def test_too_short() -> None:
    assert reason(check_packet(V3, A5, MULTICAST_V4, 255, b"\x31\x33\x00")) is (
        DiscardReason.TOO_SHORT
    )


def test_length_mismatch() -> None:
    wire = encode(V3_ADVERT, A5, MULTICAST_V4)
    result = check_packet(V3, A5, MULTICAST_V4, 255, wire[:-4])
    assert reason(result) is DiscardReason.LENGTH_MISMATCH


def test_bad_checksum() -> None:
    wire = bytearray(encode(V3_ADVERT, A5, MULTICAST_V4))
    wire[2] ^= 1
    assert reason(check_packet(V3, A5, MULTICAST_V4, 255, bytes(wire))) is (
        DiscardReason.BAD_CHECKSUM
    )


def test_bad_type() -> None:
    wire = bytearray(encode(V3_ADVERT, A5, MULTICAST_V4))
    wire[0] = 0x32
    wire[6] -= 1  # keep the checksum right so that only the type is wrong
    assert reason(check_packet(V3, A5, MULTICAST_V4, 255, bytes(wire))) is DiscardReason.BAD_TYPE


def test_bad_version_instance_mismatch() -> None:
    assert reason(run(V3, V2_ADVERT)) is DiscardReason.BAD_VERSION
    assert reason(run(V2, V3_ADVERT)) is DiscardReason.BAD_VERSION


def test_invalid_auth_type() -> None:
    wire = bytearray(encode(V2_ADVERT, A5, MULTICAST_V4))
    wire[4] = 7
    wire[6] -= 6
    assert reason(check_packet(V2, A5, MULTICAST_V4, 255, bytes(wire))) is (
        DiscardReason.INVALID_AUTH_TYPE
    )


def test_vrid_mismatch_is_not_for_us() -> None:
    result = run(V3, replace(V3_ADVERT, vrid=52))
    assert reason(result) is DiscardReason.VRID_MISMATCH
    assert reason(result).not_for_us


def test_vrid_checked_before_malformed_content() -> None:
    # a broken advert of another virtual router is none of our business (keepalived too)
    assert reason(check_packet(V3, A5, MULTICAST_V4, 255, b"\x31\x34" + bytes(10))) is (
        DiscardReason.VRID_MISMATCH
    )


@pytest.mark.parametrize("ttl", [0, 1, 64, 254])
def test_bad_ttl_multicast(ttl: int) -> None:
    assert reason(run(V3, V3_ADVERT, ttl=ttl)) is DiscardReason.BAD_TTL


def test_ttl_unknown_is_not_checked() -> None:
    assert isinstance(run(V3, V3_ADVERT, ttl=None), Accepted)


def test_unicast_skips_ttl_check_without_peer_limits() -> None:
    assert isinstance(run(V3_UNI, V3_ADVERT, dst=A10, ttl=3), Accepted)


def test_peer_ttl_out_of_range() -> None:
    params = replace(V3, unicast_peers=(UnicastPeer(A5, min_ttl=250, max_ttl=255),))
    assert isinstance(run(params, V3_ADVERT, dst=A10, ttl=250), Accepted)
    assert reason(run(params, V3_ADVERT, dst=A10, ttl=249)) is (DiscardReason.PEER_TTL_OUT_OF_RANGE)


def test_peer_limits_imply_source_check() -> None:
    # keepalived sets check_unicast_src as soon as a peer has min_ttl/max_ttl
    params = replace(V3, unicast_peers=(UnicastPeer(A5, max_ttl=254),))
    assert reason(run(params, V3_ADVERT, src=A99, dst=A10)) is (
        DiscardReason.SOURCE_NOT_UNICAST_PEER
    )


def test_auth_type_mismatch() -> None:
    advert = replace(V2_ADVERT, auth_type=AuthType.NONE, auth_data=b"")
    assert reason(run(V2, advert)) is DiscardReason.AUTH_TYPE_MISMATCH
    no_auth = replace(V2, auth_type=AuthType.NONE, auth_pass=b"")
    assert reason(run(no_auth, V2_ADVERT)) is DiscardReason.AUTH_TYPE_MISMATCH
    assert isinstance(run(no_auth, advert), Accepted)


def test_auth_password_mismatch() -> None:
    advert = replace(V2_ADVERT, auth_data=b"secret13")
    assert reason(run(V2, advert)) is DiscardReason.AUTH_PASSWORD_MISMATCH


def test_short_password_matches_nul_padded() -> None:
    params = replace(V2, auth_pass=b"pw")
    assert isinstance(run(params, replace(V2_ADVERT, auth_data=b"pw")), Accepted)


def test_v2_advert_interval_mismatch() -> None:
    advert = replace(V2_ADVERT, advert_int_cs=200)
    assert reason(run(V2, advert)) is DiscardReason.ADVERT_INTERVAL_MISMATCH


def test_v3_advert_interval_mismatch_is_only_noted() -> None:
    advert = replace(V3_ADVERT, advert_int_cs=50)
    assert run(V3, advert) == Accepted(advert, (Note.ADVERT_INTERVAL_MISMATCH,))


def test_multicast_on_unicast_instance() -> None:
    assert reason(run(V3_UNI, V3_ADVERT)) is DiscardReason.MULTICAST_ON_UNICAST


def test_unicast_on_multicast_instance() -> None:
    assert reason(run(V3, V3_ADVERT, dst=A10)) is DiscardReason.UNICAST_ON_MULTICAST
    ipv6 = ReceiveParams(version=3, vrid=51, vips=VIPS6)
    advert6 = Advert(3, 51, 200, 100, VIPS6)
    result = run(ipv6, advert6, src=LL, dst=IPv6Address("fe80::2"))
    assert reason(result) is DiscardReason.UNICAST_ON_MULTICAST


def test_source_not_unicast_peer() -> None:
    params = replace(V3_UNI, check_unicast_src=True)
    assert isinstance(run(params, V3_ADVERT, dst=A10), Accepted)
    assert reason(run(params, V3_ADVERT, src=A99, dst=A10)) is (
        DiscardReason.SOURCE_NOT_UNICAST_PEER
    )
    # without check_unicast_src keepalived takes adverts from anyone
    assert isinstance(run(V3_UNI, V3_ADVERT, src=A99, dst=A10), Accepted)


def test_address_list_mismatch_logged_by_default() -> None:
    advert = replace(V3_ADVERT, addresses=VIPS4[:1])
    assert run(V3, advert) == Accepted(advert, (Note.ADDRESS_LIST_MISMATCH,))


def test_address_list_order_does_not_matter() -> None:
    advert = replace(V3_ADVERT, addresses=VIPS4[::-1])
    assert run(V3, advert) == Accepted(advert, ())


def test_address_list_mismatch_strict_discards() -> None:
    strict = replace(V3, address_check=AddressCheck.STRICT)
    other = (VIPS4[0], IPv4Address("10.1.1.102"))
    assert reason(run(strict, replace(V3_ADVERT, addresses=other))) is (
        DiscardReason.ADDRESS_LIST_MISMATCH
    )
    off = replace(V3, address_check=AddressCheck.OFF)
    assert run(off, replace(V3_ADVERT, addresses=other)).notes == ()  # type: ignore[union-attr]


def test_we_are_address_owner() -> None:
    params = replace(V3, owner_ignore_adverts=True)
    assert reason(run(params, V3_ADVERT)) is DiscardReason.WE_ARE_ADDRESS_OWNER


def test_unicast_checksum_compat_with_multicast_pseudo_destination() -> None:
    # old keepalived put 224.0.0.18 into the unicast pseudo-header; 2.2.7 accepts and adapts
    wire = encode(V3_ADVERT, A5, MULTICAST_V4)
    result = check_packet(V3_UNI, A5, A10, 255, wire)
    assert result == Accepted(V3_ADVERT, (Note.UNICAST_CHECKSUM_COMPAT,))
    # but only for unicast instances
    assert reason(check_packet(V3, A5, A10, 255, wire)) is DiscardReason.BAD_CHECKSUM


def test_checksum_as_v2_instance() -> None:
    params = replace(V3, v3_checksum_as_v2=True)
    assert run(params, V3_ADVERT, as_v2=True) == Accepted(V3_ADVERT, ())
    # the standard form is accepted too, with a note (keepalived >= 2.2.8 accepts anything)
    assert run(params, V3_ADVERT) == Accepted(V3_ADVERT, (Note.CHECKSUM_WITH_PSEUDO_HEADER,))
    # an instance without the option rejects the pseudo-header-less form
    assert reason(run(V3, V3_ADVERT, as_v2=True)) is DiscardReason.BAD_CHECKSUM


def test_every_discard_reason_is_covered_here() -> None:
    text = Path(__file__).read_text(encoding="utf-8")
    decode_ip_only = {DiscardReason.NOT_VRRP, DiscardReason.BAD_IP_HEADER}
    for member in set(DiscardReason) - decode_ip_only:
        assert f"DiscardReason.{member.name}" in text, member


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": 1, "vrid": 1},
        {"version": 3, "vrid": 0},
        {"version": 2, "vrid": 1, "auth_type": AuthType.AH},
        {"version": 2, "vrid": 1, "auth_pass": b"123456789"},
    ],
)
def test_bad_params_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        ReceiveParams(**kwargs)  # type: ignore[arg-type]


def test_bad_peer_ttl_limits() -> None:
    with pytest.raises(ValueError, match="min_ttl"):
        UnicastPeer(A5, min_ttl=200, max_ttl=100)
