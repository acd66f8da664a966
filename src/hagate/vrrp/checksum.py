"""The Internet checksum (RFC 1071) as VRRP uses it, with the v3 pseudo-headers.

Speed trick: the one's-complement sum of 16-bit words is congruent to the whole buffer read
as one big-endian integer modulo 0xFFFF (because 0x10000 = 1 mod 0xFFFF), so a single
``int.from_bytes`` replaces a Python loop over the words. Pseudo-header fields add the same
way: an address read as an integer is congruent to the sum of its 16-bit words.
"""

from __future__ import annotations

from .advert import VRRP_PROTOCOL, IPAddress

_MOD = 0xFFFF

Buffer = bytes | bytearray | memoryview


def raw_sum(data: Buffer) -> int:
    """Unreduced sum of ``data`` as 16-bit words (odd length padded with a zero octet)."""
    if len(data) & 1:
        return int.from_bytes(bytes(data) + b"\x00", "big")
    return int.from_bytes(data, "big")


def pseudo_header_sum(src: IPAddress, dst: IPAddress, length: int) -> int:
    """Unreduced sum of the IPv4 (RFC 768 style) or IPv6 (RFC 8200 §8.1) pseudo-header.

    RFC 9568 §5.2.8: the VRRPv3 checksum covers a pseudo-header of source, destination,
    upper-layer length and protocol 112; the word layout differs between IPv4 and IPv6 but
    the one's-complement sum is the same.
    """
    return int(src) + int(dst) + VRRP_PROTOCOL + length


def finish(total: int) -> int:
    """Fold an unreduced sum and return the checksum field value (one's complement)."""
    folded = total % _MOD
    if folded == 0 and total != 0:
        folded = _MOD  # a non-zero sum folds to 0xFFFF ("negative zero"), never to 0
    return (~folded) & 0xFFFF


def is_valid(total: int) -> bool:
    """True if a sum taken over data *including* its checksum field verifies."""
    return total != 0 and total % _MOD == 0
