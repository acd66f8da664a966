"""Just enough rtnetlink to list and follow interface addresses (stdlib only)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")


@dataclass(frozen=True, slots=True)
class AddrMessage:
    """One RTM_NEWADDR / RTM_DELADDR: which interface, which address, added or removed."""

    added: bool
    ifindex: int
    address: IPInterface


def _attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return
        yield kind, data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3


def parse(data: bytes) -> Iterator[AddrMessage | int]:
    """Decode a netlink datagram: address messages, or NLMSG_DONE / an error code as int."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            return
        body = offset + _NLMSGHDR.size
        if kind == NLMSG_DONE:
            yield 0
        elif kind == NLMSG_ERROR:
            yield -struct.unpack_from("=i", data, body)[0] or 0
        elif kind in (RTM_NEWADDR, RTM_DELADDR):
            family, prefixlen, _f, _scope, index = _IFADDRMSG.unpack_from(data, body)
            attrs = dict(_attrs(data, body + _IFADDRMSG.size, offset + length))
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None and family in (socket.AF_INET, socket.AF_INET6):
                address = ipaddress.ip_interface((ipaddress.ip_address(raw), prefixlen))
                yield AddrMessage(kind == RTM_NEWADDR, index, address)
        offset += (length + 3) & ~3


def request_dump(sock: socket.socket, seq: int = 1) -> None:
    """Ask for every address of every interface (RTM_GETADDR, NLM_F_DUMP)."""
    body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    sock.send(header + body)


def dump_addresses(sock: socket.socket, ifindex: int) -> set[IPInterface]:
    """The addresses on interface ``ifindex`` now, read with a dump request on ``sock``."""
    request_dump(sock)
    found: set[IPInterface] = set()
    while True:
        for item in parse(sock.recv(65536)):
            if isinstance(item, int):
                if item:
                    raise OSError(item, "RTM_GETADDR failed")
                return found
            if item.ifindex == ifindex and item.added:
                found.add(item.address)
