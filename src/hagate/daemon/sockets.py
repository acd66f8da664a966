"""Raw IP protocol 112 sockets, one per (interface, family), shared by all instances on it.

As keepalived does: bound to the interface (SO_BINDTODEVICE), TTL / hop limit 255 on every
advert (RFC 3768 §5.2.3, RFC 9568 §5.1.1.3), DSCP CS6 (TOS / traffic class 0xc0), our own
multicast not looped back, the VRRP group joined on the interface only when some instance
uses multicast. IPv4 raw sockets hand us the IP header (TTL and destination are read
there); IPv6 gives hop limit and destination as ancillary data (IPV6_RECVHOPLIMIT,
IPV6_RECVPKTINFO). The kernel does not checksum for us (IPV6_CHECKSUM off): the codec
computes the VRRP checksum over its pseudo-header, so we choose the source address
ourselves and pass it with IP_PKTINFO / IPV6_PKTINFO.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hagate.daemon import bpf
from hagate.vrrp.advert import MULTICAST_V4, MULTICAST_V6, VRRP_PROTOCOL, VRRP_TTL
from hagate.vrrp.packet import PacketError, decode_ip

log = logging.getLogger(__name__)

IPAddr = IPv4Address | IPv6Address

# Linux constants Python's socket module does not always export.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
# DSCP CS6 ("network control", RFC 4594), as keepalived (IPTOS_PREC_INTERNETCONTROL) and
# FRR's vrrpd mark adverts: on a congested QoS link they are the last to be dropped.
DSCP_CS6_TOS = 0xC0
IP_MULTICAST_ALL = 49
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_MEMINFO = 55  # Linux 4.12: u32 sk_meminfo[SK_MEMINFO_VARS]
_SK_MEMINFO_DROPS = 8
_SK_MEMINFO_VARS = 9
# keepalived's kernel_rx_buf_size has no default (the kernel's ~200 KiB); a few MiB let a
# backup ride out a burst of junk without the kernel dropping the master's adverts with it.
RX_BUF_SIZE = 4 * 1024 * 1024

_LINK_GONE = (errno.ENODEV, errno.ENXIO, errno.ENETDOWN, errno.ENETUNREACH)
PacketHandler = Callable[[IPAddr, IPAddr, "int | None", bytes], None]
_RECV_SIZE = 2048
_ANC_SIZE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + 64
_MAX_BATCH = 256  # packets per wake-up before other callbacks get their turn
# version/IHL, total length, flags/fragment offset, TTL, protocol, source + destination
_V4_FAST = struct.Struct("!BxH2xHBB2x8s")
_CACHE_MAX = 256  # distinct (source, destination) pairs / IPv6 addresses remembered
_HOP = struct.Struct("=i")
_UNSPECIFIED_V6 = IPv6Address(0)


def _ignore(reason: str) -> None:
    """Default discard handler."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A destination ready for sendmsg: ancillary data (our source) and address."""

    ancillary: list[tuple[int, int, bytes]]
    address: tuple[str, int] | tuple[str, int, int, int]
    dst: IPAddr


class VrrpSocket:
    """A raw protocol-112 socket bound to one interface for one address family."""

    def __init__(
        self, ifname: str, ifindex: int, family: int, rx_buf_size: int = RX_BUF_SIZE
    ) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.family = family
        self.rx_buf_size = rx_buf_size
        self.vrids: frozenset[int] = frozenset()  # what the attached filter lets through
        self.groups: frozenset[IPAddr] = frozenset()  # multicast groups joined
        self._sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, VRRP_PROTOCOL)
        try:
            self._setup()
        except OSError:
            self._sock.close()
            raise
        self._reader: PacketHandler | None = None
        self._pairs: dict[bytes, tuple[IPv4Address, IPv4Address]] = {}
        self._on_discard: Callable[[str], None] = _ignore

    def _setup(self) -> None:
        s = self._sock
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
        if self.rx_buf_size > 0:
            try:  # beyond net.core.rmem_max (needs CAP_NET_ADMIN), else within it
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rx_buf_size)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rx_buf_size)
        if self.family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_CS6_TOS)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            # Only the groups this socket joined, not every socket's (as keepalived sets).
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            mreqn = struct.pack("=4s4si", b"\0" * 4, b"\0" * 4, self.ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, -1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, DSCP_CS6_TOS)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)

    def join_multicast(self, group: IPAddr | None = None) -> None:
        """Join ``group`` (default 224.0.0.18 or ff02::12, RFC 3768 §5.2.2, RFC 9568
        §5.1.2.2; another with mcast_dst_ip / vrrp_mcast_group4/6) on this interface. With
        IP_MULTICAST_ALL off the socket hears only the groups it joined."""
        if group is None:
            group = MULTICAST_V4 if self.family == socket.AF_INET else MULTICAST_V6
        if group in self.groups:
            return
        self._sock.setsockopt(*self._membership(group, join=True))
        self.groups = self.groups | {group}

    def leave_multicast(self, group: IPAddr) -> None:
        """Leave a group no instance on this socket sends to any more (after a reload)."""
        if group not in self.groups:
            return
        self.groups = self.groups - {group}
        try:
            self._sock.setsockopt(*self._membership(group, join=False))
        except OSError as exc:
            log.debug("%s: cannot leave %s: %s", self.ifname, group, exc.strerror)

    def _membership(self, group: IPAddr, join: bool) -> tuple[int, int, bytes]:
        if self.family == socket.AF_INET:
            mreqn = struct.pack("=4s4si", group.packed, b"\0" * 4, self.ifindex)
            opt = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
            return socket.IPPROTO_IP, opt, mreqn
        mreq = struct.pack("=16si", group.packed, self.ifindex)
        opt = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
        return socket.IPPROTO_IPV6, opt, mreq

    def fileno(self) -> int:
        return self._sock.fileno()

    def set_filter(self, vrids: frozenset[int]) -> None:
        """Let only these VRIDs (with a consistent length) reach us (:mod:`bpf`); an empty
        set removes nothing (the socket is about to close). Errors are logged: without the
        filter the codec still rejects everything, only at a higher cost."""
        if not vrids or vrids == self.vrids:
            return
        program = bpf.vrrp_filter(4 if self.family == socket.AF_INET else 6, vrids)
        code = ctypes.create_string_buffer(bpf.pack(program))
        fprog = struct.pack("HL", len(program), ctypes.addressof(code))
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError as exc:
            log.warning("%s: cannot attach the receive filter: %s", self.ifname, exc.strerror)
            return
        self.vrids = vrids

    def kernel_drops(self) -> int | None:
        """Packets the kernel dropped for this socket (receive queue full: sk_drops, what
        SO_RXQ_OVFL reports), None if the kernel cannot tell (before Linux 4.12)."""
        try:
            raw = self._sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * _SK_MEMINFO_VARS)
        except OSError:
            return None
        if len(raw) < 4 * (_SK_MEMINFO_DROPS + 1):
            return None
        return int(struct.unpack_from("=I", raw, 4 * _SK_MEMINFO_DROPS)[0])

    def receive_buffer(self) -> int:
        """The receive buffer the kernel granted (it doubles what was asked for)."""
        return int(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def prepare(self, src: IPAddr, dst: IPAddr, ttl: int | None = None) -> Prepared:
        """Ancillary data and address for sending from ``src`` to ``dst`` (built once).
        ``ttl``: this destination's TTL / hop limit (keepalived ``unicast_ttl``) when not the
        socket's 255, as an IP_TTL / IPV6_HOPLIMIT control message (one socket serves every
        instance on the interface). IPv4 cannot send TTL 0 (the kernel refuses): 1."""
        if self.family == socket.AF_INET:
            info = struct.pack("=i4s4s", self.ifindex, src.packed, b"\0" * 4)
            anc = [(socket.IPPROTO_IP, IP_PKTINFO, info)]
            if ttl is not None and ttl != VRRP_TTL:
                anc.append((socket.IPPROTO_IP, socket.IP_TTL, _HOP.pack(max(1, ttl))))
            return Prepared(anc, (str(dst), 0), dst)
        info = struct.pack("=16si", src.packed, self.ifindex)
        anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)]
        if ttl is not None and ttl != VRRP_TTL:
            anc.append((socket.IPPROTO_IPV6, IPV6_HOPLIMIT, _HOP.pack(ttl)))
        return Prepared(anc, (str(dst), 0, 0, self.ifindex), dst)

    def send_prepared(self, payload: bytes, to: Prepared) -> bool:
        """Send one VRRP message; errors are logged (not raised) and return False."""
        try:
            self._sock.sendmsg([payload], to.ancillary, 0, to.address)
        except OSError as exc:
            if exc.errno in _LINK_GONE:  # the link monitor says why, once (keepalived too)
                log.debug("%s: cannot send advert to %s: %s", self.ifname, to.dst, exc.strerror)
            elif exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                log.warning("%s: cannot send advert to %s: %s", self.ifname, to.dst, exc.strerror)
            return False
        return True

    def send(self, payload: bytes, src: IPAddr, dst: IPAddr) -> bool:
        """Send one VRRP message from ``src`` to ``dst``."""
        return self.send_prepared(payload, self.prepare(src, dst))

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_packet: PacketHandler,
        on_discard: Callable[[str], None] = _ignore,
    ) -> None:
        """Deliver each packet as ``on_packet(src, dst, ttl, vrrp_message)``; IP-level junk
        goes to ``on_discard(reason)``."""
        self._reader = on_packet
        self._on_discard = on_discard
        loop.add_reader(self._sock.fileno(), self._drain)

    def _drain(self) -> None:
        """Read every queued packet (one wake-up, many packets); never raises."""
        on_packet = self._reader
        if on_packet is None:
            return
        sock = self._sock
        if self.family == socket.AF_INET:
            self._drain_v4(sock, on_packet)
            return
        for _ in range(_MAX_BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(_RECV_SIZE, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: receive error: %s", self.ifname, exc.strerror)
                return
            try:
                src6, dst6, hop = _v6_facts(anc, addr)
                on_packet(src6, dst6, hop, data)
            except PacketError as exc:
                self._on_discard(exc.reason.value)
            except Exception:  # one bad packet or handler bug must not stop the reader
                log.exception("%s: error handling a packet", self.ifname)

    def _drain_v4(self, sock: socket.socket, on_packet: PacketHandler) -> None:
        # The common packet (20-octet header, protocol 112, not a fragment) is split here
        # with one unpack and cached address objects; anything else goes to decode_ip,
        # which gives the same answer for the common packet and the discard reason for junk.
        recv = sock.recv
        pairs = self._pairs
        for _ in range(_MAX_BATCH):
            try:
                data = recv(_RECV_SIZE)  # the IP header tells us all we need
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: receive error: %s", self.ifname, exc.strerror)
                return
            try:
                if len(data) >= 20:
                    vihl, tot_len, frag, ttl, proto, both = _V4_FAST.unpack_from(data)
                    if (
                        vihl == 0x45
                        and proto == VRRP_PROTOCOL
                        and not frag & 0x3FFF
                        and 20 <= tot_len <= len(data)
                    ):
                        pair = pairs.get(both)
                        if pair is None:
                            pair = _pair(pairs, both)
                        on_packet(pair[0], pair[1], ttl, data[20:tot_len])
                        continue
                src, dst, ttl4, payload = decode_ip(data)
                on_packet(src, dst, ttl4, payload)
            except PacketError as exc:
                self._on_discard(exc.reason.value)
            except Exception:  # one bad packet or handler bug must not stop the reader
                log.exception("%s: error handling a packet", self.ifname)

    def close(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None and self._reader is not None:
            loop.remove_reader(self._sock.fileno())
        self._reader = None
        self._sock.close()


_V6_ADDRS: dict[object, IPv6Address] = {}


def _v6_address(key: str | bytes) -> IPv6Address:
    """An interned address object for a peer's source string or a packed destination."""
    addr = _V6_ADDRS.get(key)
    if addr is None:
        if len(_V6_ADDRS) >= _CACHE_MAX:
            _V6_ADDRS.clear()
        text = key.split("%", 1)[0] if isinstance(key, str) else key
        addr = _V6_ADDRS[key] = IPv6Address(text)
    return addr


def _pair(
    pairs: dict[bytes, tuple[IPv4Address, IPv4Address]], both: bytes
) -> tuple[IPv4Address, IPv4Address]:
    """Address objects for an IPv4 header's source + destination octets, remembered."""
    if len(pairs) >= _CACHE_MAX:
        pairs.clear()  # a flood of forged sources must not grow memory
    pair = pairs[both] = (IPv4Address(both[:4]), IPv4Address(both[4:]))
    return pair


def _v6_facts(
    anc: list[tuple[int, int, bytes]], addr: tuple[object, ...]
) -> tuple[IPv6Address, IPv6Address, int | None]:
    """Source, destination and hop limit of a received IPv6 packet."""
    hop: int | None = None
    dst = _UNSPECIFIED_V6
    for level, kind, value in anc:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == IPV6_HOPLIMIT and len(value) >= 4:
            hop = _HOP.unpack_from(value)[0]
        elif kind == IPV6_PKTINFO and len(value) >= 16:
            dst = _v6_address(value[:16])
    return _v6_address(str(addr[0])), dst, hop
