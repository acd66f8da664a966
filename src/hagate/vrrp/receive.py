"""Receiver checks of RFC 3768 §7.1 / RFC 9568 §7.1, in the order and manner of keepalived's
``vrrp_check_packet`` (keepalived 2.2.7). Pure function: IP facts in, verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address

from .advert import MULTICAST_V4, VRRP_TTL, Advert, AuthType, IPAddress
from .packet import AUTH_LEN, HEADER_LEN, Buffer, DiscardReason, PacketError, decode

__all__ = [
    "Accepted",
    "AddressCheck",
    "DiscardReason",
    "Discarded",
    "Note",
    "ReceiveParams",
    "UnicastPeer",
    "check_packet",
]


class AddressCheck(StrEnum):
    """What to do when an advert's address list differs from our configured VIPs."""

    LOG = "log"  # accept with Note.ADDRESS_LIST_MISMATCH (RFC 9568 §7.1, keepalived >= 2.3)
    STRICT = "strict"  # discard (keepalived 2.2.7)
    OFF = "off"  # do not compare (keepalived skip_check_adv_addr, advert from current master)


class Note(StrEnum):
    """Log-but-accept findings on an accepted advert."""

    ADDRESS_LIST_MISMATCH = "address_list_mismatch"
    # VRRPv3 only: the Backup adopts the Master's interval (RFC 9568 §6.4.2), keepalived logs it
    ADVERT_INTERVAL_MISMATCH = "advert_interval_mismatch"
    # VRRPv3 unicast whose checksum used 224.0.0.18 as pseudo-header destination (old
    # keepalived); keepalived 2.2.7 (OLD_CHKSUM_COMPAT) accepts it and switches to send so too
    UNICAST_CHECKSUM_COMPAT = "unicast_checksum_compat"
    # v3_checksum_as_v2 instance got a VRRPv3/IPv4 checksum with the pseudo-header (the
    # standard form); keepalived >= 2.2.8 with the option does not verify v3 checksums at all
    CHECKSUM_WITH_PSEUDO_HEADER = "checksum_with_pseudo_header"


@dataclass(frozen=True, slots=True)
class UnicastPeer:
    """keepalived ``unicast_peer { ADDR [min_ttl N] [max_ttl N] }``."""

    address: IPAddress
    min_ttl: int = 0
    max_ttl: int = 255

    def __post_init__(self) -> None:
        if not 0 <= self.min_ttl <= self.max_ttl <= 255:
            raise ValueError(f"peer {self.address}: need 0 <= min_ttl <= max_ttl <= 255")

    @property
    def limits_ttl(self) -> bool:
        return self.min_ttl != 0 or self.max_ttl != 255


@dataclass(frozen=True, slots=True)
class ReceiveParams:
    """What one VRRP instance checks received adverts against.

    ``unicast_peers`` empty means multicast mode. ``auth_type``/``auth_pass`` and the strict
    interval check apply to VRRPv2 only (keepalived ignores authentication for v3).
    ``owner_ignore_adverts``: set it while we are the address owner (priority 255) to drop
    adverts as RFC 3768/9568 §7.1 say (keepalived's ``owner_ignore_adverts``).
    """

    version: int
    vrid: int
    advert_int_cs: int = 100
    vips: tuple[IPAddress, ...] = ()
    auth_type: AuthType = AuthType.NONE
    auth_pass: bytes = b""
    unicast_peers: tuple[UnicastPeer, ...] = ()
    check_unicast_src: bool = False
    v3_checksum_as_v2: bool = False
    address_check: AddressCheck = AddressCheck.LOG
    owner_ignore_adverts: bool = False

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"VRRP version {self.version} (only 2 and 3 exist)")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"VRID {self.vrid} outside 1-255")
        if self.auth_type is AuthType.AH:
            raise ValueError("auth_type AH (IPsec AH) is not supported; use PASS or none")
        if len(self.auth_pass) > AUTH_LEN:
            raise ValueError(f"auth_pass longer than {AUTH_LEN} octets")

    @property
    def unicast(self) -> bool:
        return bool(self.unicast_peers)

    @property
    def checks_unicast_src(self) -> bool:
        # keepalived sets check_unicast_src as soon as a peer has min_ttl/max_ttl
        return self.unicast and (
            self.check_unicast_src or any(p.limits_ttl for p in self.unicast_peers)
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """An advert that passed the receiver checks, with notes on what was tolerated."""

    advert: Advert
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True, slots=True)
class Discarded:
    """An advert the receiver checks dropped, and why."""

    reason: DiscardReason
    detail: str


def _is_multicast(addr: IPAddress) -> bool:
    if isinstance(addr, IPv4Address):
        return int(addr) >> 28 == 0xE
    return addr.packed[0] == 0xFF


def check_packet(
    params: ReceiveParams,
    src: IPAddress,
    dst: IPAddress,
    ttl: int | None,
    payload: Buffer,
) -> Accepted | Discarded:
    """Run every receive check on one VRRP message.

    ``ttl`` is the IPv4 TTL / IPv6 hop limit, or ``None`` when unknown (not checked).
    """
    try:
        return _check(params, src, dst, ttl, payload)
    except PacketError as err:
        return Discarded(err.reason, err.detail)


def _check(
    params: ReceiveParams, src: IPAddress, dst: IPAddress, ttl: int | None, payload: Buffer
) -> Accepted:
    notes: list[Note] = []
    if len(payload) < HEADER_LEN:
        raise PacketError(DiscardReason.TOO_SHORT, f"{len(payload)} octets")
    # RFC 9568 §7.1: VRID configured on the receiving interface (keepalived looks it up first)
    if payload[1] != params.vrid:
        raise PacketError(DiscardReason.VRID_MISMATCH, f"VRID {payload[1]}, ours {params.vrid}")
    # RFC 3768/9568 §7.1: TTL/hop limit 255; keepalived skips this in unicast mode
    if not params.unicast and ttl is not None and ttl != VRRP_TTL:
        raise PacketError(DiscardReason.BAD_TTL, f"TTL/hop limit {ttl}, must be {VRRP_TTL}")
    if payload[0] >> 4 != params.version:
        raise PacketError(
            DiscardReason.BAD_VERSION, f"version {payload[0] >> 4}, ours {params.version}"
        )
    advert = _decode(params, src, dst, payload, notes)
    if advert.version == 2:
        _check_v2(params, advert)
    elif advert.advert_int_cs != params.advert_int_cs:
        notes.append(Note.ADVERT_INTERVAL_MISMATCH)
    multicast = _is_multicast(dst)
    if multicast and params.unicast:
        raise PacketError(DiscardReason.MULTICAST_ON_UNICAST, f"to {dst}, we use unicast peers")
    if not multicast and not params.unicast:
        raise PacketError(DiscardReason.UNICAST_ON_MULTICAST, f"to {dst}, we use multicast")
    if params.owner_ignore_adverts:
        raise PacketError(DiscardReason.WE_ARE_ADDRESS_OWNER, "we are the address owner")
    if params.address_check is not AddressCheck.OFF and not _same_addresses(
        advert.addresses, params.vips
    ):
        if params.address_check is AddressCheck.STRICT:
            raise PacketError(
                DiscardReason.ADDRESS_LIST_MISMATCH,
                f"advert has {len(advert.addresses)} addresses, we have {len(params.vips)}",
            )
        notes.append(Note.ADDRESS_LIST_MISMATCH)
    if params.checks_unicast_src:
        _check_peer(params, src, ttl)
    return Accepted(advert, tuple(notes))


def _decode(
    params: ReceiveParams, src: IPAddress, dst: IPAddress, payload: Buffer, notes: list[Note]
) -> Advert:
    as_v2 = params.v3_checksum_as_v2
    try:
        return decode(payload, src, dst, v3_checksum_as_v2=as_v2)
    except PacketError as err:
        if not (
            err.reason is DiscardReason.BAD_CHECKSUM
            and params.version == 3
            and isinstance(src, IPv4Address)
        ):
            raise
        if as_v2:
            advert = decode(payload, src, dst)  # raises the same error if still bad
            notes.append(Note.CHECKSUM_WITH_PSEUDO_HEADER)
            return advert
        if not params.unicast or dst == MULTICAST_V4:
            raise
        advert = decode(payload, src, MULTICAST_V4)
        notes.append(Note.UNICAST_CHECKSUM_COMPAT)
        return advert


def _check_v2(params: ReceiveParams, advert: Advert) -> None:
    # RFC 3768 §7.1: Auth Type matches the locally configured one
    if advert.auth_type is not params.auth_type:
        raise PacketError(
            DiscardReason.AUTH_TYPE_MISMATCH,
            f"auth type {advert.auth_type.name}, ours {params.auth_type.name}",
        )
    if params.auth_type is AuthType.PASS:
        import hmac  # only for auth PASS: hashlib/OpenSSL off the start path

        expected = params.auth_pass.ljust(AUTH_LEN, b"\x00")
        if not hmac.compare_digest(advert.auth_data, expected):
            raise PacketError(DiscardReason.AUTH_PASSWORD_MISMATCH, "wrong password")
    # RFC 3768 §7.1: MUST verify the Advertisement Interval matches ours
    if advert.advert_int_cs != params.advert_int_cs:
        raise PacketError(
            DiscardReason.ADVERT_INTERVAL_MISMATCH,
            f"interval {advert.advert_int_cs // 100} s, ours {params.advert_int_cs / 100:g} s",
        )


def _same_addresses(got: tuple[IPAddress, ...], ours: tuple[IPAddress, ...]) -> bool:
    # keepalived: same count, and every configured VIP present (order does not matter)
    return got == ours or (len(got) == len(ours) and set(ours).issubset(got))


def _check_peer(params: ReceiveParams, src: IPAddress, ttl: int | None) -> None:
    for peer in params.unicast_peers:
        if peer.address == src:
            break
    else:
        raise PacketError(DiscardReason.SOURCE_NOT_UNICAST_PEER, f"{src} is not a unicast peer")
    if ttl is not None and not peer.min_ttl <= ttl <= peer.max_ttl:
        raise PacketError(
            DiscardReason.PEER_TTL_OUT_OF_RANGE,
            f"TTL/hop limit {ttl} outside {peer.min_ttl}-{peer.max_ttl} for {src}",
        )
