"""virtual_routes / virtual_rules as rtnetlink messages (RTM_NEWROUTE/DELROUTE, NEWRULE/
DELRULE), built as keepalived 2.2.7 builds them (vrrp_iproute.c netlink_route,
vrrp_iprule.c netlink_rule), so that ``ip route show table all`` / ``ip rule`` read the
same on a hagate master as on a keepalived one. Pure: no socket here (netlink.py sends).
"""

from __future__ import annotations

import socket
import struct

from hagate.config.model import IPNetwork, VirtualRoute, VirtualRule
from hagate.daemon import rtnl

RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_NEWRULE = 32
RTM_DELRULE = 33
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_PRIORITY = 6
FRA_TABLE = 15
FRA_OIFNAME = 17
FRA_PROTOCOL = 21
FR_ACT_TO_TBL = 1
FIB_RULE_INVERT = 0x2
RTPROT_BOOT = 3
RTPROT_KEEPALIVED = 18  # keepalived's protocol for the routes it tracks (the default)
RT_TABLE_UNSPEC = 0
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}

_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope,
# type, flags; struct fib_rule_hdr has the same layout (family, dst_len, src_len, tos,
# table, res1, res2, action, flags)
_U32 = struct.Struct("=I")


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _table(table: int) -> tuple[int, bytes]:
    """The header's 8-bit table and the RTA_TABLE/FRA_TABLE attribute (beyond 255 only the
    attribute counts; keepalived sends it then, iproute2 always: the kernel prefers it)."""
    return (table if table < 256 else RT_TABLE_UNSPEC), rtnl.attr(RTA_TABLE, _U32.pack(table))


def _net(kind: int, net: IPNetwork) -> bytes:
    return rtnl.attr(kind, net.network_address.packed) if net.prefixlen else b""


def route_message(route: VirtualRoute, oif: int | None) -> bytes:
    """The body of an RTM_NEWROUTE / RTM_DELROUTE for ``route`` (``oif``: its ``dev``'s
    index)."""
    table, table_attr = _table(route.table)
    protocol = RTPROT_KEEPALIVED if route.track else RTPROT_BOOT
    scope = SCOPES[route.scope or "global"]
    head = _RTMSG.pack(
        _family(route.dst.version), route.dst.prefixlen, 0, 0, table, protocol, scope,
        route.type.value, 0,
    )  # fmt: skip
    body = head + _net(RTA_DST, route.dst) + table_attr
    if route.via is not None:
        body += rtnl.attr(RTA_GATEWAY, route.via.packed)
    if oif is not None:
        body += rtnl.attr(RTA_OIF, _U32.pack(oif))
    if route.src is not None:
        body += rtnl.attr(RTA_PREFSRC, route.src.packed)
    if route.metric is not None:
        body += rtnl.attr(RTA_PRIORITY, _U32.pack(route.metric))
    return body


def delete_message(route: VirtualRoute, oif: int | None, ours_only: bool = False) -> bytes:
    """RTM_DELROUTE: the same key with scope nowhere and protocol 0, which the kernel reads
    as "any" (as ``ip route del`` sends it); ``ours_only`` keeps protocol keepalived."""
    body = bytearray(route_message(route, oif))
    if not ours_only:
        body[5] = 0  # protocol
    body[6] = SCOPES["nowhere"]
    return bytes(body)


def rule_message(rule: VirtualRule) -> bytes:
    """The body of an RTM_NEWRULE / RTM_DELRULE (a lookup rule, FR_ACT_TO_TBL)."""
    table, _ = _table(rule.table)
    head = _RTMSG.pack(
        _family(rule.family),
        rule.dst.prefixlen if rule.dst is not None else 0,
        rule.src.prefixlen if rule.src is not None else 0,
        0, table, 0, 0, FR_ACT_TO_TBL, FIB_RULE_INVERT if rule.invert else 0,
    )  # fmt: skip
    body = head
    if rule.table >= 256:
        body += rtnl.attr(FRA_TABLE, _U32.pack(rule.table))
    if rule.src is not None:
        body += _net(FRA_SRC, rule.src)
    if rule.dst is not None:
        body += _net(FRA_DST, rule.dst)
    body += rtnl.attr(FRA_PRIORITY, _U32.pack(rule.priority))
    if rule.iif is not None:
        body += rtnl.attr(FRA_IIFNAME, rule.iif.encode() + b"\0")
    if rule.oif is not None:
        body += rtnl.attr(FRA_OIFNAME, rule.oif.encode() + b"\0")
    if rule.track:  # keepalived marks the rules it tracks as its own
        body += rtnl.attr(FRA_PROTOCOL, bytes([RTPROT_KEEPALIVED]))
    return body
