"""Virtual IPs and link state through rtnetlink (:mod:`rtnl`, no pyroute2 on the start path).

keepalived adds each virtual_ipaddress with its label, scope and broadcast, IPv6 ones with
IFA_F_NODAD so that they are usable at once (vrrp_ipaddress.c); it removes them on leaving
MASTER. After a SIGKILL they stay behind, so on start we remove any configured VIP we find.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from hagate.config.model import VirtualRoute, VirtualRule
from hagate.daemon import routes, rtnl

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFA_F_NODAD = 0x02
_EEXIST = 17
_EADDRNOTAVAIL = 99
_ENODEV = 19
_ESRCH = 3  # RTM_DELROUTE: no such route
_ENOENT = 2  # RTM_DELRULE: no such rule
RTMGRP_LINK = 0x1
_OURS_FOR = 5.0  # seconds: how long an RTM_DELADDR may lag our own deletion
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
DEFAULT_MTU = 1500
_MONITOR_RCVBUF = 1 << 20  # a burst of link/address events must not overflow the queue

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


class _HasRoutes(Protocol):
    @property
    def routes(self) -> tuple[VirtualRoute, ...]: ...
    @property
    def rules(self) -> tuple[VirtualRule, ...]: ...


class NetlinkFailure(RuntimeError):
    """A netlink request failed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Vip:
    """One virtual_ipaddress entry (keepalived: ``ADDR[/LEN] [brd X] [dev IF] [scope S]
    [label L]``)."""

    address: IPv4Address | IPv6Address
    prefixlen: int
    dev: str
    brd: IPv4Address | None = None
    scope: int = 0
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen} dev {self.dev}"


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What we need of a link: index, MAC, whether up and running, MTU."""

    index: int
    name: str
    mac: bytes
    flags: int
    mtu: int = DEFAULT_MTU

    @property
    def usable(self) -> bool:
        """keepalived counts an interface as up when IFF_UP and IFF_RUNNING are set."""
        return bool(self.flags & IFF_UP) and bool(self.flags & IFF_RUNNING)


def _link_info(link: rtnl.Link) -> LinkInfo:
    return LinkInfo(
        index=link.index,
        name=str(link.name),
        mac=link.mac if len(link.mac) == 6 else b"\x00" * 6,
        flags=link.flags,
        mtu=link.mtu or DEFAULT_MTU,
    )


def _ip(raw: bytes) -> IPv4Address | IPv6Address:
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


@dataclass(frozen=True, slots=True)
class AddressGone:
    """An RTM_DELADDR event: ``address`` left the interface with index ``index``."""

    index: int
    address: IPv4Address | IPv6Address


class Netlink:
    """Requests on one rtnetlink socket (in the namespace the daemon runs in)."""

    def __init__(self) -> None:
        self._nl = rtnl.Rtnl()
        self._index: dict[str, int] = {}
        # Our own deletions, so that their RTM_DELADDR is not taken for an operator's.
        self._removing: dict[IPv4Address | IPv6Address, list[float]] = {}

    def ours(self, address: IPv4Address | IPv6Address) -> bool:
        """True (once) if ``address`` was deleted by us in the last few seconds."""
        stamps = self._removing.get(address)
        if not stamps:
            return False
        now = time.monotonic()
        while stamps and now - stamps[0] > _OURS_FOR:
            stamps.pop(0)
        if not stamps:
            del self._removing[address]
            return False
        stamps.pop(0)
        return True

    def _expect(self, address: IPv4Address | IPv6Address) -> None:
        self._removing.setdefault(address, []).append(time.monotonic())

    def _unexpect(self, address: IPv4Address | IPv6Address) -> None:
        stamps = self._removing.get(address)
        if stamps:
            stamps.pop()

    def close(self) -> None:
        self._nl.close()

    def forget(self, name: str, index: int | None = None) -> None:
        """The interface ``name`` went away or came back with a new index (RTM_DELLINK /
        RTM_NEWLINK): later requests must not use the old index ("No such device")."""
        if index is None:
            self._index.pop(name, None)
        else:
            self._index[name] = index

    def _request(self, kind: int, flags: int, body: bytes, what: str) -> list[rtnl.Message]:
        try:
            return self._nl.request(kind, flags, body)
        except rtnl.RtnlError:
            raise
        except OSError as exc:
            raise NetlinkFailure(f"{what}: {exc.strerror or exc}") from None

    async def links(self) -> dict[str, LinkInfo]:
        out: dict[str, LinkInfo] = {}
        try:
            msgs = self._request(rtnl.RTM_GETLINK, rtnl.NLM_F_DUMP, bytes(16), "link dump")
        except rtnl.RtnlError as exc:
            raise NetlinkFailure(f"link dump: {exc.strerror}") from None
        for msg in msgs:
            if msg.type != rtnl.RTM_NEWLINK:
                continue
            link = rtnl.parse_link(msg.body)
            if link.name is None:
                continue
            info = _link_info(link)
            out[info.name] = info
            self._index[info.name] = info.index
        return out

    async def link(self, name: str) -> LinkInfo:
        links = await self.links()
        if name not in links:
            raise NetlinkFailure(f"interface {name} does not exist")
        return links[name]

    async def _ifindex(self, name: str) -> int:
        if name not in self._index:
            await self.link(name)
        return self._index[name]

    async def addresses(self, name: str) -> list[tuple[IPv4Address | IPv6Address, int]]:
        """Addresses on ``name`` as (address, prefixlen)."""
        index = await self._ifindex(name)
        out: list[tuple[IPv4Address | IPv6Address, int]] = []
        try:
            msgs = self._request(
                rtnl.RTM_GETADDR, rtnl.NLM_F_DUMP, rtnl.ifaddr(0, 0, 0, 0, 0), "address dump"
            )
        except rtnl.RtnlError as exc:
            raise NetlinkFailure(f"address dump: {exc.strerror}") from None
        for msg in msgs:
            if msg.type != rtnl.RTM_NEWADDR:
                continue
            addr = rtnl.parse_addr(msg.body)
            if addr.index == index and addr.address and len(addr.address) in (4, 16):
                out.append((_ip(addr.address), addr.prefixlen))
        return out

    async def add_vip(self, vip: Vip) -> bool:
        """Add ``vip``; True if added, False if it was already there."""
        index = await self._ifindex(vip.dev)
        packed = vip.address.packed
        if vip.address.version == 4:
            head = rtnl.ifaddr(socket.AF_INET, vip.prefixlen, 0, vip.scope, index)
            body = head + rtnl.attr(rtnl.IFA_LOCAL, packed) + rtnl.attr(rtnl.IFA_ADDRESS, packed)
            if vip.brd is not None:
                body += rtnl.attr(rtnl.IFA_BROADCAST, vip.brd.packed)
            if vip.label:
                body += rtnl.attr(rtnl.IFA_LABEL, vip.label.encode() + b"\0")
        else:  # usable at once, as keepalived does
            head = rtnl.ifaddr(socket.AF_INET6, vip.prefixlen, IFA_F_NODAD, vip.scope, index)
            body = head + rtnl.attr(rtnl.IFA_ADDRESS, packed)
        flags = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
        try:
            self._request(rtnl.RTM_NEWADDR, flags, body, f"cannot add {vip}")
        except rtnl.RtnlError as exc:
            if exc.errno == _EEXIST:
                return False
            raise NetlinkFailure(f"cannot add {vip}: {exc.strerror}") from None
        return True

    async def remove_vip(self, vip: Vip) -> bool:
        """Remove ``vip``; True if removed, False if it was not there."""
        self._expect(vip.address)
        try:
            index = await self._ifindex(vip.dev)
            family = socket.AF_INET if vip.address.version == 4 else socket.AF_INET6
            kind = rtnl.IFA_LOCAL if family == socket.AF_INET else rtnl.IFA_ADDRESS
            body = rtnl.ifaddr(family, vip.prefixlen, 0, 0, index)
            body += rtnl.attr(kind, vip.address.packed)
            self._request(rtnl.RTM_DELADDR, 0, body, f"cannot remove {vip}")
        except NetlinkFailure:
            self._unexpect(vip.address)
            return False
        except rtnl.RtnlError as exc:
            self._unexpect(vip.address)
            if exc.errno in (_EADDRNOTAVAIL, _ENODEV):
                return False
            raise NetlinkFailure(f"cannot remove {vip}: {exc.strerror}") from None
        except BaseException:
            self._unexpect(vip.address)
            raise
        return True

    async def _oif(self, dev: str | None) -> int | None:
        return None if dev is None else await self._ifindex(dev)

    async def add_route(self, route: VirtualRoute) -> bool:
        """Install a virtual_routes entry; True if added, False if it was already there."""
        body = routes.route_message(route, await self._oif(route.dev))
        flags = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
        try:
            self._request(routes.RTM_NEWROUTE, flags, body, f"cannot add route {route}")
        except rtnl.RtnlError as exc:
            if exc.errno == _EEXIST:
                return False
            raise NetlinkFailure(f"cannot add route {route}: {exc.strerror}") from None
        return True

    async def remove_stale_routes(self, plans: Iterable[_HasRoutes]) -> list[str]:
        """Remove the configured routes and rules a killed daemon left behind (only those
        marked protocol keepalived: an operator's identical static route stays)."""
        removed: list[str] = []
        for plan in plans:
            for rule in plan.rules:
                if rule.track and await self.remove_rule(rule):
                    removed.append(f"rule {rule}")
            for route in plan.routes:
                if route.track and await self.remove_route(route, ours_only=True):
                    removed.append(f"route {route}")
        return removed

    async def remove_route(self, route: VirtualRoute, ours_only: bool = False) -> bool:
        """Remove a virtual_routes entry; False if it was not there (or its dev is gone).
        ``ours_only``: only a route with keepalived's protocol."""
        try:
            body = routes.delete_message(route, await self._oif(route.dev), ours_only)
            self._request(routes.RTM_DELROUTE, 0, body, f"cannot remove route {route}")
        except NetlinkFailure:
            return False
        except rtnl.RtnlError as exc:
            if exc.errno in (_ESRCH, _ENODEV):
                return False
            raise NetlinkFailure(f"cannot remove route {route}: {exc.strerror}") from None
        return True

    async def add_rule(self, rule: VirtualRule) -> bool:
        """Install a virtual_rules entry; True if added, False if it was already there."""
        flags = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
        try:
            self._request(routes.RTM_NEWRULE, flags, routes.rule_message(rule), f"rule {rule}")
        except rtnl.RtnlError as exc:
            if exc.errno == _EEXIST:
                return False
            raise NetlinkFailure(f"cannot add rule {rule}: {exc.strerror}") from None
        return True

    async def remove_rule(self, rule: VirtualRule) -> bool:
        """Remove a virtual_rules entry; False if it was not there."""
        try:
            self._request(routes.RTM_DELRULE, 0, routes.rule_message(rule), f"rule {rule}")
        except rtnl.RtnlError as exc:
            if exc.errno == _ENOENT:
                return False
            raise NetlinkFailure(f"cannot remove rule {rule}: {exc.strerror}") from None
        return True

    async def remove_stale(self, vips: Iterable[Vip]) -> list[Vip]:
        """Remove any of ``vips`` already present (left by a killed daemon)."""
        removed: list[Vip] = []
        by_dev: dict[str, list[Vip]] = {}
        for vip in vips:
            by_dev.setdefault(vip.dev, []).append(vip)
        for dev, dev_vips in by_dev.items():
            try:
                present = {a for a, _ in await self.addresses(dev)}
            except NetlinkFailure:
                continue
            for vip in dev_vips:
                if vip.address in present and await self.remove_vip(vip):
                    removed.append(vip)
        return removed


class LinkMonitor:
    """Calls ``on_change(LinkInfo)`` for every RTM_NEWLINK / RTM_DELLINK event (a deleted
    link comes with flags 0) and ``on_address_gone(AddressGone)`` for every RTM_DELADDR, as
    keepalived's netlink reflector does (no polling)."""

    def __init__(
        self,
        on_change: Callable[[LinkInfo], None],
        on_address_gone: Callable[[AddressGone], None] | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_gone = on_address_gone
        self._nl: rtnl.Rtnl | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.overruns = 0  # times the kernel dropped events (receive queue full)

    async def start(self) -> None:
        groups = RTMGRP_LINK
        if self._on_gone is not None:
            groups |= RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
        self._nl = rtnl.Rtnl(groups=groups, rcvbuf=_MONITOR_RCVBUF)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._nl.fileno(), self._drain)

    def _drain(self) -> None:
        assert self._nl is not None
        try:
            for msg in self._nl.events():
                try:
                    self._dispatch(msg)
                except Exception:  # one odd message or handler bug must not stop us
                    log.exception("link monitor: error handling event %d", msg.type)
        except rtnl.RtnlError as exc:
            self.overruns += 1  # ENOBUFS: events were lost; the next ones still count
            log.warning("link monitor: %s", exc.strerror)

    def _dispatch(self, msg: rtnl.Message) -> None:
        if msg.type in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
            link = rtnl.parse_link(msg.body)
            if not link.name:
                return
            info = _link_info(link)
            if msg.type == rtnl.RTM_DELLINK:
                info = LinkInfo(info.index, info.name, info.mac, 0, info.mtu)
            self._on_change(info)
        elif msg.type == rtnl.RTM_DELADDR and self._on_gone is not None:
            addr = rtnl.parse_addr(msg.body)
            if addr.address and len(addr.address) in (4, 16):
                self._on_gone(AddressGone(addr.index, _ip(addr.address)))

    def close(self) -> None:
        if self._nl is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._nl.fileno())
            self._nl.close()
            self._nl = None
