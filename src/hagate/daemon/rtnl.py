"""A lean rtnetlink client: the few requests and events the daemon needs, in the stdlib.

Why not pyroute2 here: importing it costs 100-200 ms (it loads its whole object model),
which kept a restarting node out of its first election for that long; keepalived speaks
rtnetlink directly and is in BACKUP within tens of milliseconds. The daemon needs links
(RTM_GETLINK), addresses (RTM_GETADDR / NEWADDR / DELADDR) and the link/address
multicast groups, nothing more. pyroute2 stays for rarer work (VMAC interfaces).

Requests are synchronous: rtnetlink answers in the sender's context (and produces each
next part of a dump on recv), so a request costs microseconds and never waits on a peer.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")  # length, type
_ERR = struct.Struct("=i")
_U32 = struct.Struct("=I")
_RECV = 1 << 17
TIMEOUT = 5.0  # seconds: a kernel that does not answer a request is a bug, not a wait


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is set) or the answer made no sense."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded."""
    raw = _RTA.pack(_RTA.size + len(value), kind) + value
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def attrs(data: bytes, offset: int) -> dict[int, bytes]:
    """The rtattrs of a message body from ``offset`` (last one of each type wins)."""
    out: dict[int, bytes] = {}
    while offset + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size or offset + length > len(data):
            break
        out[kind & 0x3FFF] = data[offset + _RTA.size : offset + length]
        offset += _align(length)
    return out


@dataclass(frozen=True, slots=True)
class Message:
    """One netlink message: type, flags and body (the part after the nlmsghdr)."""

    type: int
    flags: int
    seq: int
    body: bytes


def split(data: bytes) -> Iterator[Message]:
    """The messages of one datagram (a truncated tail is dropped)."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            return
        yield Message(kind, flags, seq, data[offset + _NLMSG.size : offset + length])
        offset += _align(length)


@dataclass(frozen=True, slots=True)
class Link:
    """An RTM_NEWLINK / RTM_DELLINK message."""

    index: int
    flags: int
    name: str | None
    mac: bytes
    mtu: int | None


def parse_link(body: bytes) -> Link:
    _fam, _type, index, flags, _change = _IFINFO.unpack_from(body)
    a = attrs(body, _IFINFO.size)
    name = a[IFLA_IFNAME].split(b"\0", 1)[0].decode(errors="replace") if IFLA_IFNAME in a else None
    mtu = _U32.unpack(a[IFLA_MTU][:4])[0] if len(a.get(IFLA_MTU, b"")) >= 4 else None
    return Link(index, flags, name, a.get(IFLA_ADDRESS, b""), mtu)


@dataclass(frozen=True, slots=True)
class Addr:
    """An RTM_NEWADDR / RTM_DELADDR message (``address`` is IFA_LOCAL, else IFA_ADDRESS)."""

    family: int
    prefixlen: int
    index: int
    address: bytes | None


def parse_addr(body: bytes) -> Addr:
    family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(body)
    a = attrs(body, _IFADDR.size)
    return Addr(family, prefixlen, index, a.get(IFA_LOCAL) or a.get(IFA_ADDRESS))


def ifaddr(family: int, prefixlen: int, flags: int, scope: int, index: int) -> bytes:
    return _IFADDR.pack(family, prefixlen, flags, scope, index)


@dataclass
class Rtnl:
    """One NETLINK_ROUTE socket; ``groups`` subscribes it to events (then read with
    :meth:`events` when it is readable)."""

    groups: int = 0
    rcvbuf: int = 0
    sock: socket.socket = field(init=False)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC)
        try:
            if self.rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            self.sock.bind((0, self.groups))
            # an event socket is drained when readable and must never wait (a timeout
            # would make recv poll for it); a request socket waits, bounded
            self.sock.settimeout(0.0 if self.groups else TIMEOUT)
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def request(self, kind: int, flags: int, body: bytes) -> list[Message]:
        """Send one request; its answers (every part of a dump), or RtnlError."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        seq = self._seq
        flags |= NLM_F_REQUEST
        if flags & NLM_F_DUMP != NLM_F_DUMP:
            flags |= NLM_F_ACK
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, flags, seq, 0) + body)
        out: list[Message] = []
        while True:
            try:
                data = self.sock.recv(_RECV)
            except TimeoutError:
                raise RtnlError(errno.ETIMEDOUT, "no answer from the kernel") from None
            for msg in split(data):
                if msg.seq != seq:
                    continue  # an answer to an abandoned earlier request
                if msg.type == NLMSG_DONE:
                    return out
                if msg.type == NLMSG_ERROR:
                    code = -_ERR.unpack_from(msg.body)[0] if len(msg.body) >= 4 else errno.EIO
                    if code:
                        raise RtnlError(code, os.strerror(code))
                    return out
                out.append(msg)
                if not msg.flags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out

    def events(self) -> Iterator[Message]:
        """Every event queued now (non-blocking); ENOBUFS (events lost) raises RtnlError."""
        while True:
            try:
                data = self.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise RtnlError(exc.errno, exc.strerror) from None
            yield from split(data)
