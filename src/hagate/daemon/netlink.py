"""Virtual IPs and link state through rtnetlink (pyroute2's asyncio API).

keepalived adds each virtual_ipaddress with its label, scope and broadcast, IPv6 ones with
IFA_F_NODAD so that they are usable at once (vrrp_ipaddress.c); it removes them on leaving
MASTER. After a SIGKILL they stay behind, so on start we remove any configured VIP we find.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from pyroute2 import AsyncIPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFA_F_NODAD = 0x02
_EEXIST = 17
_EADDRNOTAVAIL = 99
_ENODEV = 19
RTMGRP_LINK = 0x1
_OURS_FOR = 5.0  # seconds: how long an RTM_DELADDR may lag our own deletion
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
DEFAULT_MTU = 1500

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}


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


def _mac(text: str | None) -> bytes:
    if not text:
        return b"\x00" * 6
    return bytes(int(part, 16) for part in text.split(":"))


def _link_from_msg(msg: Any) -> LinkInfo:
    return LinkInfo(
        index=int(msg["index"]),
        name=str(msg.get("ifname")),
        mac=_mac(msg.get("address")),
        flags=int(msg["flags"]),
        mtu=int(msg.get("mtu") or DEFAULT_MTU),
    )


@dataclass(frozen=True, slots=True)
class AddressGone:
    """An RTM_DELADDR event: ``address`` left the interface with index ``index``."""

    index: int
    address: IPv4Address | IPv6Address


class Netlink:
    """Requests on one rtnetlink socket (in the namespace the daemon runs in)."""

    def __init__(self) -> None:
        self._ipr = AsyncIPRoute()
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
        self._ipr.close()

    def forget(self, name: str, index: int | None = None) -> None:
        """The interface ``name`` went away or came back with a new index (RTM_DELLINK /
        RTM_NEWLINK): later requests must not use the old index ("No such device")."""
        if index is None:
            self._index.pop(name, None)
        else:
            self._index[name] = index

    async def links(self) -> dict[str, LinkInfo]:
        out: dict[str, LinkInfo] = {}
        async for msg in await self._ipr.link("dump"):
            info = _link_from_msg(msg)
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
        async for msg in await self._ipr.addr("dump", index=index):
            addr = msg.get("address")
            if addr:
                out.append((ip_address(addr), int(msg["prefixlen"])))
        return out

    async def add_vip(self, vip: Vip) -> bool:
        """Add ``vip``; True if added, False if it was already there."""
        index = await self._ifindex(vip.dev)
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(vip.address),
            "prefixlen": vip.prefixlen,
            "scope": vip.scope,
        }
        if vip.address.version == 4:
            if vip.brd is not None:
                kwargs["broadcast"] = str(vip.brd)
            if vip.label:
                kwargs["label"] = vip.label
        else:
            kwargs["flags"] = IFA_F_NODAD  # usable at once, as keepalived does
        try:
            await self._ipr.addr("add", **kwargs)
        except NetlinkError as exc:
            if exc.code == _EEXIST:
                return False
            raise NetlinkFailure(f"cannot add {vip}: {exc.args[-1]}") from None
        return True

    async def remove_vip(self, vip: Vip) -> bool:
        """Remove ``vip``; True if removed, False if it was not there."""
        self._expect(vip.address)
        try:
            index = await self._ifindex(vip.dev)
            await self._ipr.addr(
                "del", index=index, address=str(vip.address), prefixlen=vip.prefixlen
            )
        except NetlinkFailure:
            self._unexpect(vip.address)
            return False
        except NetlinkError as exc:
            self._unexpect(vip.address)
            if exc.code in (_EADDRNOTAVAIL, _ENODEV):
                return False
            raise NetlinkFailure(f"cannot remove {vip}: {exc.args[-1]}") from None
        except BaseException:
            self._unexpect(vip.address)
            raise
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
        self._ipr = AsyncIPRoute()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        groups = RTMGRP_LINK
        if self._on_gone is not None:
            groups |= RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
        await self._ipr.bind(groups=groups)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:  # get() yields the messages of one datagram
                async for msg in self._ipr.get():
                    try:
                        self._dispatch(msg)
                    except Exception:  # one odd message or handler bug must not stop us
                        log.exception("link monitor: error handling %s", msg.get("event"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken monitor must not take the daemon down
            log.error("link monitor stopped: %s", exc)

    def _dispatch(self, msg: Any) -> None:
        event = msg.get("event")
        if event == "RTM_NEWLINK" and msg.get("ifname"):
            self._on_change(_link_from_msg(msg))
        elif event == "RTM_DELLINK" and msg.get("ifname"):
            gone = _link_from_msg(msg)
            self._on_change(LinkInfo(gone.index, gone.name, gone.mac, 0, gone.mtu))
        elif event == "RTM_DELADDR" and self._on_gone is not None:
            text = msg.get("local") or msg.get("address")
            if text:
                self._on_gone(AddressGone(int(msg["index"]), ip_address(text)))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._ipr.close()
