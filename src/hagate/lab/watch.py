"""Sniffers that run in a thread and record what they saw with time.monotonic() stamps.

:class:`GarpWatcher` sees gratuitous ARP and unsolicited Neighbor Advertisements on a node's
interface (what a new VRRP master sends, RFC 3768 §8.1.2 / RFC 9568 §6.4.1 "(+) ... send a
gratuitous ARP request / Neighbor Advertisement"); :class:`AddressWatcher` sees addresses come
and go on it (rtnetlink). Both open their socket inside the node's namespace.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from hagate.lab import netlink
from hagate.lab.errors import LabError
from hagate.lab.nsenter import socket_in_netns

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ICMPV6_NA = 136

E = TypeVar("E")


class GarpKind(StrEnum):
    ARP = "ARP"
    NA = "NA"


@dataclass(frozen=True, slots=True)
class GarpEvent:
    """A gratuitous ARP or unsolicited NA: when, which kind, for which IP, from which MAC."""

    t: float
    kind: GarpKind
    ip: IPAddress
    mac: str


@dataclass(frozen=True, slots=True)
class AddrEvent:
    """An address added to (or removed from) the watched interface."""

    t: float
    added: bool
    address: netlink.IPInterface


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_garp(frame: bytes, t: float) -> GarpEvent | None:
    """A GarpEvent if ``frame`` (Ethernet) is a gratuitous ARP or an unsolicited NA."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == ETH_P_ARP and len(frame) >= 42:
        htype, ptype, hlen, plen = struct.unpack_from("!HHBB", frame, 14)
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
            return None
        sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
        if spa != tpa:  # gratuitous: sender and target protocol address are the same
            return None
        return GarpEvent(t, GarpKind.ARP, ipaddress.IPv4Address(spa), _mac(sha))
    if ethertype == ETH_P_IPV6 and len(frame) >= 14 + 40 + 24:
        if frame[14 + 6] != 58 or frame[54] != ICMPV6_NA:  # next header ICMPv6, type NA
            return None
        if frame[58] & 0x40:  # Solicited flag set: an answer, not an announcement
            return None
        target = ipaddress.IPv6Address(frame[62:78])
        mac = _mac(frame[6:12])
        opt = 78
        while opt + 8 <= len(frame) and frame[opt + 1]:
            if frame[opt] == 2:  # Target Link-Layer Address option
                mac = _mac(frame[opt + 2 : opt + 8])
            opt += frame[opt + 1] * 8
        return GarpEvent(t, GarpKind.NA, target, mac)
    return None


class _Watcher(Generic[E]):
    """A socket read by a daemon thread; every decoded item is kept in ``events``."""

    def __init__(self, sock: socket.socket, what: str) -> None:
        self._sock = sock
        self._what = what
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.events: list[E] = []
        self._thread = threading.Thread(target=self._loop, name=f"lab-{what}", daemon=True)
        self._thread.start()

    def _decode(self, data: bytes, t: float) -> list[E]:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.05)
                if not ready:
                    continue
                data = self._sock.recv(65536)
            except OSError:
                return
            t = time.monotonic()
            items = self._decode(data, t)
            if items:
                with self._cond:
                    self.events.extend(items)
                    self._cond.notify_all()

    def _wait(self, match: Callable[[E], bool], timeout: float, describe: str) -> E:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if match(event):
                        return event
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(f"no {describe} within {timeout:g} s")
                self._cond.wait(left)

    def stop(self) -> None:
        """Stop the thread and close the socket (idempotent)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._sock.close()

    def __enter__(self) -> _Watcher[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GarpWatcher(_Watcher[GarpEvent]):
    """Records gratuitous ARP / unsolicited NA seen on one interface of a namespace."""

    def __init__(self, netns: str, ifname: str) -> None:
        sock = socket_in_netns(netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.bind((ifname, 0))
        except OSError as exc:
            sock.close()
            raise LabError(f"cannot sniff on {ifname} in {netns}: {exc.strerror}") from None
        super().__init__(sock, f"garp-{netns}")

    def _decode(self, data: bytes, t: float) -> list[GarpEvent]:
        event = parse_garp(data, t)
        return [event] if event else []

    def wait_for(
        self,
        ip: str | IPAddress | None = None,
        *,
        after: float = 0.0,
        timeout: float = 5.0,
        mac: str | None = None,
        kind: GarpKind | None = None,
    ) -> GarpEvent:
        """The first event (at or after monotonic time ``after``) that matches; LabError if none."""
        want = ipaddress.ip_address(ip) if ip is not None else None
        mac_l = mac.lower() if mac else None

        def match(e: GarpEvent) -> bool:
            return (
                e.t >= after
                and (want is None or e.ip == want)
                and (mac_l is None or e.mac == mac_l)
                and (kind is None or e.kind == kind)
            )

        return self._wait(match, timeout, f"gratuitous ARP/NA for {ip or 'any address'}")


class AddressWatcher(_Watcher[AddrEvent]):
    """Records addresses added to / removed from one interface (by index) of a namespace."""

    def __init__(self, netns: str, ifindex: int) -> None:
        sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, netlink.RTMGRP_IPV4_IFADDR | netlink.RTMGRP_IPV6_IFADDR))
        self._ifindex = ifindex
        super().__init__(sock, f"addr-{netns}")

    def _decode(self, data: bytes, t: float) -> list[AddrEvent]:
        return [
            AddrEvent(t, m.added, m.address)
            for m in netlink.parse(data)
            if isinstance(m, netlink.AddrMessage) and m.ifindex == self._ifindex
        ]

    def wait_for(
        self, ip: str | IPAddress, *, added: bool = True, after: float = 0.0, timeout: float = 5.0
    ) -> AddrEvent:
        """The first add (or removal) of ``ip`` at or after ``after``; LabError if none."""
        want = ipaddress.ip_address(ip)

        def match(e: AddrEvent) -> bool:
            return e.t >= after and e.added == added and e.address.ip == want

        verb = "added" if added else "removed"
        return self._wait(match, timeout, f"address {want} {verb}")


# -- VRRP adverts -----------------------------------------------------------------------------

VRRP_PROTOCOL = 112  # RFC 3768 §5.2.4, RFC 9568 §5.1.1.3
SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; the socket module does not export it
_TIMESPEC = struct.Struct("@qq")


@dataclass(frozen=True, slots=True)
class AdvertEvent:
    """A VRRP advertisement that arrived in a namespace.

    ``t`` is the kernel's receive timestamp moved onto the ``time.monotonic()`` clock;
    ``woke`` is ``time.monotonic()`` when the reader got it (``woke - t`` is the read latency).
    """

    t: float
    woke: float
    src: ipaddress.IPv4Address
    version: int
    vrid: int
    priority: int


def parse_vrrp(packet: bytes, t: float, woke: float | None = None) -> AdvertEvent | None:
    """An AdvertEvent if ``packet`` (IPv4 header + payload) carries a VRRP advertisement."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != VRRP_PROTOCOL:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl + 8:
        return None
    version, kind = packet[ihl] >> 4, packet[ihl] & 0x0F
    if version not in (2, 3) or kind != 1:  # type 1 = ADVERTISEMENT (RFC 3768 §5.3.2)
        return None
    src = ipaddress.IPv4Address(packet[12:16])
    woke = t if woke is None else woke
    return AdvertEvent(t, woke, src, version, vrid=packet[ihl + 1], priority=packet[ihl + 2])


class AdvertSniffer:
    """VRRP adverts (IPv4, protocol 112) arriving in a namespace, read in the caller's thread.

    A raw socket gets a copy of every advert delivered to the namespace (unicast ones too),
    so the daemons there see the same packets. No thread: :meth:`next` returns as soon as the
    kernel hands over the packet, for callers that must act right after an advert.
    """

    def __init__(self, netns: str) -> None:
        self._sock = socket_in_netns(netns, socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _read(self) -> AdvertEvent | None:
        data, anc, _, _ = self._sock.recvmsg(65536, socket.CMSG_SPACE(_TIMESPEC.size))
        woke = time.monotonic_ns()
        t_ns = woke
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                # the stamp is CLOCK_REALTIME; shift it by the realtime - monotonic offset now
                offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()
                t_ns = min(woke, sec * 1_000_000_000 + nsec - offset)
        return parse_vrrp(data, t_ns / 1e9, woke / 1e9)

    def drain(self) -> list[AdvertEvent]:
        """Every advert queued now, without waiting."""
        out = []
        while select.select([self._sock], [], [], 0)[0]:
            event = self._read()
            if event:
                out.append(event)
        return out

    def next(
        self, src: str | ipaddress.IPv4Address | None = None, timeout: float = 5.0
    ) -> AdvertEvent:
        """The next advert (from ``src``) that arrives; queued ones are skipped first."""
        want = ipaddress.IPv4Address(src) if src is not None else None
        self.drain()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self._sock], [], [], left)[0]:
                break
            event = self._read()
            if event and (want is None or event.src == want):
                return event
        raise LabError(f"no VRRP advert from {want or 'anyone'} within {timeout:g} s")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> AdvertSniffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
