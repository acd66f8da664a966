"""VRRP wire codec: VRRPv2 (RFC 3768 §5) over IPv4, VRRPv3 (RFC 9568 §5.2) over IPv4/IPv6.

Also keepalived's non-strict VRRPv2 over IPv6: v2 header, IPv6 addresses, no authentication
data, checksum with the IPv6 pseudo-header (as the kernel's IPV6_CHECKSUM computes it).

``encode``/``decode`` handle the VRRP message (the IP payload); ``decode_ip`` splits a whole
IPv4/IPv6 packet as a capture or an IPv4 raw socket delivers it. Pure code: no sockets.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from . import checksum
from .advert import VRRP_PROTOCOL, Advert, AuthType, IPAddress

Buffer = bytes | bytearray | memoryview

VRRP_TYPE_ADVERTISEMENT = 1  # RFC 3768 §5.3.2, RFC 9568 §5.2.2: the only type defined
HEADER_LEN = 8  # fixed part of both versions
AUTH_LEN = 8  # VRRPv2 Authentication Data (RFC 3768 §5.3.10)
MAX_ADVER_INT_V3_CS = 0x0FFF  # 12 bits of centiseconds (RFC 9568 §5.2.7)
MAX_ADVER_INT_V2_S = 0xFF  # 8 bits of seconds (RFC 3768 §5.3.7)


class DiscardReason(StrEnum):
    """Why a received packet was not accepted; values are stable counter names."""

    TOO_SHORT = "too_short"  # shorter than the fixed VRRP fields
    LENGTH_MISMATCH = "length_mismatch"  # Count IPvX Addr disagrees with the length
    BAD_VERSION = "bad_version"  # not 2 or 3, or not the instance's version
    BAD_TYPE = "bad_type"  # type is not 1 (Advertisement)
    BAD_CHECKSUM = "bad_checksum"
    INVALID_AUTH_TYPE = "invalid_auth_type"  # v2 auth type not 0, 1 or 2
    NOT_VRRP = "not_vrrp"  # IP packet that does not carry protocol 112
    BAD_IP_HEADER = "bad_ip_header"  # truncated/inconsistent IP header, fragment
    VRID_MISMATCH = "vrid_mismatch"  # not for us: another virtual router's advert
    BAD_TTL = "bad_ttl"  # multicast advert with TTL/hop limit != 255
    PEER_TTL_OUT_OF_RANGE = "peer_ttl_out_of_range"  # unicast peer min_ttl/max_ttl
    AUTH_TYPE_MISMATCH = "auth_type_mismatch"  # v2 auth type differs from ours
    AUTH_PASSWORD_MISMATCH = "auth_password_mismatch"  # v2 PASS password differs
    ADVERT_INTERVAL_MISMATCH = "advert_interval_mismatch"  # v2 interval differs from ours
    MULTICAST_ON_UNICAST = "multicast_on_unicast_instance"
    UNICAST_ON_MULTICAST = "unicast_on_multicast_instance"
    SOURCE_NOT_UNICAST_PEER = "source_not_unicast_peer"
    ADDRESS_LIST_MISMATCH = "address_list_mismatch"  # only with AddressCheck.STRICT
    WE_ARE_ADDRESS_OWNER = "we_are_address_owner"  # only with owner_ignore_adverts

    @property
    def not_for_us(self) -> bool:
        """True for packets that are fine but belong to another virtual router."""
        return self is DiscardReason.VRID_MISMATCH


class PacketError(Exception):
    """A packet that cannot be accepted; ``reason`` is the counter, ``detail`` the log text."""

    def __init__(self, reason: DiscardReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class IpPacket(NamedTuple):
    """The facts the receive checks need from the IP layer."""

    src: IPAddress
    dst: IPAddress
    hop_limit: int  # IPv4 TTL or IPv6 Hop Limit
    payload: bytes  # the VRRP message


_HEADER = struct.Struct("!BBBBHH")
_AUTH_TYPES = tuple(AuthType)
_NO_AUTH = bytes(AUTH_LEN)

# Adverts repeat the same address block every interval: cache its decoded tuple, per family.
_ADDR_CACHE_V4: dict[bytes, tuple[IPAddress, ...]] = {}
_ADDR_CACHE_V6: dict[bytes, tuple[IPAddress, ...]] = {}
_ADDR_CACHE_MAX = 1024


def _addresses(block: bytes, v4: bool) -> tuple[IPAddress, ...]:
    cache = _ADDR_CACHE_V4 if v4 else _ADDR_CACHE_V6
    cached = cache.get(block)
    if cached is not None:
        return cached
    if v4:
        words = struct.unpack(f"!{len(block) // 4}I", block)
        addrs: tuple[IPAddress, ...] = tuple(IPv4Address(w) for w in words)
    else:
        addrs = tuple(IPv6Address(block[i : i + 16]) for i in range(0, len(block), 16))
    if len(cache) >= _ADDR_CACHE_MAX:
        cache.clear()
    cache[block] = addrs
    return addrs


def _pseudo_sum(src: IPAddress, dst: IPAddress, length: int, as_v2: bool) -> int:
    # RFC 9568 §5.2.8; keepalived's vrrp_v3_checksum_as_v2 drops the IPv4 pseudo-header.
    # Over IPv6 the kernel always checksums with the pseudo-header (IPV6_CHECKSUM).
    if as_v2 and isinstance(src, IPv4Address):
        return 0
    return checksum.pseudo_header_sum(src, dst, length)


def decode(
    payload: Buffer, src: IPAddress, dst: IPAddress, *, v3_checksum_as_v2: bool = False
) -> Advert:
    """Parse and validate one VRRP message; raise :class:`PacketError` if malformed.

    ``src``/``dst`` are the IP addresses it came with: they pick the address family and
    feed the VRRPv3 pseudo-header (use the real destination, also in unicast).
    """
    n = len(payload)
    if n < HEADER_LEN:
        raise PacketError(DiscardReason.TOO_SHORT, f"{n} octets, need at least {HEADER_LEN}")
    vers_type, vrid, priority, count, word, _ = _HEADER.unpack_from(payload)
    version = vers_type >> 4
    v4 = isinstance(src, IPv4Address)
    with_auth = version == 2 and v4  # keepalived's non-strict VRRPv2 over IPv6 has none
    if version == 3 or version == 2:
        expected = HEADER_LEN + count * (4 if v4 else 16) + (AUTH_LEN if with_auth else 0)
    else:
        raise PacketError(DiscardReason.BAD_VERSION, f"version {version}")
    if with_auth and n < HEADER_LEN + AUTH_LEN:
        raise PacketError(
            DiscardReason.TOO_SHORT, f"{n} octets, VRRPv2 needs at least {HEADER_LEN + AUTH_LEN}"
        )
    if vers_type & 0x0F != VRRP_TYPE_ADVERTISEMENT:
        raise PacketError(DiscardReason.BAD_TYPE, f"type {vers_type & 0x0F}")
    if n != expected:
        raise PacketError(
            DiscardReason.LENGTH_MISMATCH,
            f"{count} addresses need {expected} octets, got {n}",
        )
    total = checksum.raw_sum(payload)
    if not with_auth:
        total += _pseudo_sum(src, dst, n, v3_checksum_as_v2)
    if not checksum.is_valid(total):
        raise PacketError(DiscardReason.BAD_CHECKSUM, f"VRRPv{version} checksum does not verify")
    block = bytes(payload[HEADER_LEN:])
    if version == 3:
        # 4 reserved bits are ignored on reception (RFC 9568 §5.2.6)
        return Advert(3, vrid, priority, word & MAX_ADVER_INT_V3_CS, _addresses(block, v4))
    auth_type = word >> 8
    if auth_type > 2:
        raise PacketError(DiscardReason.INVALID_AUTH_TYPE, f"auth type {auth_type}")
    auth_data = b""
    if with_auth:
        block, auth_data = block[:-AUTH_LEN], block[-AUTH_LEN:]
        if auth_type == 0 and auth_data == _NO_AUTH:
            auth_data = b""
    return Advert(
        2,
        vrid,
        priority,
        (word & 0xFF) * 100,
        _addresses(block, v4),
        _AUTH_TYPES[auth_type],
        auth_data,
    )


def _check_encodable(advert: Advert, src: IPAddress, dst: IPAddress) -> None:
    v4 = isinstance(src, IPv4Address)
    if isinstance(dst, IPv4Address) != v4:
        raise ValueError(f"source {src} and destination {dst} are of different families")
    if not 1 <= advert.vrid <= 255:
        raise ValueError(f"VRID {advert.vrid} outside 1-255")
    if not 0 <= advert.priority <= 255:
        raise ValueError(f"priority {advert.priority} outside 0-255")
    if len(advert.addresses) > 255:
        raise ValueError(f"{len(advert.addresses)} addresses, at most 255 fit")
    family = IPv4Address if v4 else IPv6Address
    for addr in advert.addresses:
        if not isinstance(addr, family):
            raise ValueError(f"address {addr} is not of the family of source {src}")
    if advert.version == 3:
        if not 0 <= advert.advert_int_cs <= MAX_ADVER_INT_V3_CS:
            raise ValueError(f"advert_int {advert.advert_int_cs} cs outside 0-4095")
        if advert.auth_type is not AuthType.NONE or advert.auth_data:
            raise ValueError("VRRPv3 has no authentication (RFC 9568 §9)")
    elif advert.version == 2:
        secs, rest = divmod(advert.advert_int_cs, 100)
        if rest or not 0 <= secs <= MAX_ADVER_INT_V2_S:
            raise ValueError(f"advert_int {advert.advert_int_cs} cs is not 0-255 whole seconds")
        if len(advert.auth_data) > (AUTH_LEN if v4 else 0):
            raise ValueError(f"auth_data longer than {AUTH_LEN if v4 else 0} octets")
    else:
        raise ValueError(f"VRRP version {advert.version} (only 2 and 3 exist)")


def encode(
    advert: Advert, src: IPAddress, dst: IPAddress, *, v3_checksum_as_v2: bool = False
) -> bytes:
    """Build the VRRP message for ``advert`` sent from ``src`` to ``dst``.

    Raises ``ValueError`` for an advert that cannot go on the wire.
    """
    _check_encodable(advert, src, dst)
    addrs = b"".join(a.packed for a in advert.addresses)
    with_auth = advert.version == 2 and isinstance(src, IPv4Address)
    if advert.version == 3:
        word = advert.advert_int_cs
    else:
        word = (int(advert.auth_type) << 8) | (advert.advert_int_cs // 100)
    tail = addrs + advert.auth_data.ljust(AUTH_LEN, b"\x00") if with_auth else addrs
    head = _HEADER.pack(
        (advert.version << 4) | VRRP_TYPE_ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        len(advert.addresses),
        word,
        0,
    )
    body = head + tail
    total = checksum.raw_sum(body)
    if not with_auth:
        total += _pseudo_sum(src, dst, len(body), v3_checksum_as_v2)
    return body[:6] + checksum.finish(total).to_bytes(2, "big") + body[8:]


_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6_FIXED = 40


def decode_ip(packet: Buffer) -> IpPacket:
    """Split an IPv4 or IPv6 packet carrying VRRP into :class:`IpPacket`.

    Trailing octets beyond the IP length (Ethernet padding) are dropped. IPv6 extension
    headers are not supported (VRRP adverts carry none). Raises :class:`PacketError`.
    """
    n = len(packet)
    if n < 1:
        raise PacketError(DiscardReason.BAD_IP_HEADER, "empty packet")
    ip_version = packet[0] >> 4
    if ip_version == 4:
        if n < 20:
            raise PacketError(DiscardReason.BAD_IP_HEADER, f"IPv4 header truncated at {n}")
        vihl, _, tot_len, _, frag, ttl, proto, _, src, dst = _IPV4.unpack_from(packet)
        ihl = (vihl & 0x0F) * 4
        if ihl < 20 or ihl > tot_len or tot_len > n:
            raise PacketError(
                DiscardReason.BAD_IP_HEADER, f"IPv4 ihl {ihl}, total length {tot_len}, have {n}"
            )
        if frag & 0x3FFF:
            raise PacketError(DiscardReason.BAD_IP_HEADER, "IPv4 fragment")
        if proto != VRRP_PROTOCOL:
            raise PacketError(DiscardReason.NOT_VRRP, f"IPv4 protocol {proto}")
        return IpPacket(IPv4Address(src), IPv4Address(dst), ttl, bytes(packet[ihl:tot_len]))
    if ip_version == 6:
        if n < _IPV6_FIXED:
            raise PacketError(DiscardReason.BAD_IP_HEADER, f"IPv6 header truncated at {n}")
        plen = int.from_bytes(packet[4:6], "big")
        if _IPV6_FIXED + plen > n:
            raise PacketError(
                DiscardReason.BAD_IP_HEADER, f"IPv6 payload length {plen}, have {n - 40}"
            )
        if packet[6] != VRRP_PROTOCOL:
            raise PacketError(DiscardReason.NOT_VRRP, f"IPv6 next header {packet[6]}")
        return IpPacket(
            IPv6Address(bytes(packet[8:24])),
            IPv6Address(bytes(packet[24:40])),
            packet[7],
            bytes(packet[_IPV6_FIXED : _IPV6_FIXED + plen]),
        )
    raise PacketError(DiscardReason.NOT_VRRP, f"IP version {ip_version}")
