"""The VRRP advertisement as the core sees it: decoded, version-independent fields.

The codec (``packet.py``) turns bytes into an :class:`Advert` and back; the state machine
(``machine.py``) consumes and produces them. Neither knows about sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address

VRRP_PROTOCOL = 112  # IANA IP protocol number (RFC 3768 §5.2.4, RFC 9568 §5.1.1.3)
VRRP_TTL = 255  # RFC 3768 §5.2.3, RFC 9568 §5.1.1.3 / §5.1.2.3
MULTICAST_V4 = IPv4Address("224.0.0.18")  # RFC 3768 §5.2.2
MULTICAST_V6 = IPv6Address("ff02::12")  # RFC 9568 §5.1.2.2


class AuthType(IntEnum):
    """VRRPv2 authentication type (RFC 3768 §5.3.6; RFC 2338 defined PASS and AH)."""

    NONE = 0
    PASS = 1  # simple text password, 8 octets (keepalived: auth_type PASS)
    AH = 2  # IP Authentication Header (keepalived: auth_type AH)


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRP advertisement (type 1), version 2 or 3.

    ``advert_int_cs`` is the advertisement interval in centiseconds for both versions:
    VRRPv3 carries centiseconds in 12 bits (RFC 9568 §5.2.7); VRRPv2 carries whole seconds
    in 8 bits (RFC 3768 §5.3.7), so a v2 advert of 1 s has ``advert_int_cs == 100``.
    ``auth_type``/``auth_data`` exist only on the wire in v2; ``auth_data`` is the raw
    8-octet field (a PASS password NUL-padded to 8 octets).
    """

    version: int
    vrid: int
    priority: int
    advert_int_cs: int
    addresses: tuple[IPAddress, ...]
    auth_type: AuthType = AuthType.NONE
    auth_data: bytes = b""
