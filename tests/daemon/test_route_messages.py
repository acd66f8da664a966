"""virtual_routes / virtual_rules as rtnetlink bodies: keepalived's header fields and
attributes (table beyond 255 only as RTA_TABLE, protocol keepalived unless no_track, delete
with protocol 0 / scope nowhere, rules with FRA_PROTOCOL)."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from hagate.config.model import RouteType, VirtualRoute, VirtualRule
from hagate.daemon import routes, rtnl

HEAD = struct.Struct("=BBBBBBBBI")


def test_route_body() -> None:
    route = VirtualRoute(
        IPv4Network("10.2.0.0/16"), via=IPv4Address("10.1.1.1"), dev="eth0", metric=10,
        table=1000, src=IPv4Address("10.1.1.100"), scope="link",
    )  # fmt: skip
    body = routes.route_message(route, oif=7)
    family, dst_len, _, _, table, proto, scope, kind, _ = HEAD.unpack_from(body)
    assert (family, dst_len, table, proto, scope, kind) == (socket.AF_INET, 16, 0, 18, 253, 1)
    a = rtnl.attrs(body, HEAD.size)
    assert a[routes.RTA_DST] == bytes([10, 2, 0, 0]) and a[routes.RTA_TABLE] == struct.pack(
        "=I", 1000
    )
    assert a[routes.RTA_GATEWAY] == bytes([10, 1, 1, 1]) and a[routes.RTA_OIF] == struct.pack(
        "=I", 7
    )
    assert a[routes.RTA_PRIORITY] == struct.pack("=I", 10)
    assert a[routes.RTA_PREFSRC] == bytes([10, 1, 1, 100])
    gone = routes.delete_message(route, oif=7)
    assert HEAD.unpack_from(gone)[5:7] == (0, 255) and gone[HEAD.size :] == body[HEAD.size :]


def test_blackhole_default_untracked() -> None:
    body = routes.route_message(
        VirtualRoute(IPv6Network("::/0"), type=RouteType.BLACKHOLE, track=False), oif=None
    )
    family, dst_len, _, _, table, proto, scope, kind, _ = HEAD.unpack_from(body)
    assert (family, dst_len, table, proto, scope, kind) == (socket.AF_INET6, 0, 254, 3, 0, 6)
    assert routes.RTA_DST not in rtnl.attrs(body, HEAD.size)  # 0/0: no destination attribute


def test_rule_body() -> None:
    rule = VirtualRule(
        4, table=100, priority=100, src=IPv4Network("10.1.1.100/32"), iif="eth0", invert=True
    )
    body = routes.rule_message(rule)
    family, dst_len, src_len, _, table, _, _, action, flags = HEAD.unpack_from(body)
    assert (family, dst_len, src_len, table, action) == (socket.AF_INET, 0, 32, 100, 1)
    assert flags == routes.FIB_RULE_INVERT
    a = rtnl.attrs(body, HEAD.size)
    assert a[routes.FRA_SRC] == bytes([10, 1, 1, 100]) and a[routes.FRA_IIFNAME] == b"eth0\0"
    assert a[routes.FRA_PRIORITY] == struct.pack("=I", 100) and a[routes.FRA_PROTOCOL] == b"\x12"
    big = routes.rule_message(VirtualRule(6, table=70000, priority=5, track=False))
    assert HEAD.unpack_from(big)[4] == 0
    b = rtnl.attrs(big, HEAD.size)
    assert b[routes.FRA_TABLE] == struct.pack("=I", 70000) and routes.FRA_PROTOCOL not in b
