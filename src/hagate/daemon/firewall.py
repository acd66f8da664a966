"""keepalived's no_accept firewall: a master that is not the address owner drops traffic to
and from its VIPs (RFC 9568 §6.1 Accept_Mode false; keepalived with ``no_accept``, the
default under ``vrrp_strict``).

keepalived 2.2.7 built with nftables (Debian's) does this with its own tables, and hagate
makes the same ones, so ``nft list ruleset`` reads the same on either master:

* ``table ip keepalived``: set ``vips`` (ipv4_addr), chains ``out`` (output hook) and ``in``
  (input hook) at priority filter - 1, policy accept, ``ip saddr/daddr @vips drop``;
* ``table ip6 keepalived``: the same with ipv6_addr, plus a constant set
  ``neighbor-discovery`` (NS, NA) accepted first and link-local addresses sent to the
  empty chains ``in_link_local`` / ``out_link_local`` (neighbour discovery must work for
  a VIP the master holds).

A table is made when the first VIP of its family is blocked (keepalived: the first
no_accept master) and deleted at exit; a VIP is in the set while its instance holds it as
master. Made with the ``nft`` command (``nft -f -``, one transaction per change; keepalived
uses libnftnl in-process): a few milliseconds before the VIPs are added, only for
instances that need it. Without ``nft`` the VIPs are not blocked and the log says so once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

log = logging.getLogger("hagate.vrrp")

TABLE = "keepalived"  # keepalived's default nftables table name
IPAddr = IPv4Address | IPv6Address


def _family(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def table_script(version: int, table: str = TABLE) -> str:
    """nft commands that (re)make the empty table of one address family, as keepalived's."""
    fam = _family(version)
    t = f"{fam} {table}"
    hook = "type filter hook {} priority filter - 1; policy accept;"
    # "add" then "delete" then "add": a table left by a killed daemon goes, in one transaction
    lines = [f"add table {t}", f"delete table {t}", f"add table {t}"]
    lines.append(f"add set {t} vips {{ type ipv{version}_addr; }}")
    if version == 4:
        lines += [
            f"add chain {t} out {{ {hook.format('output')} }}",
            f"add chain {t} in {{ {hook.format('input')} }}",
            f"add rule {t} out ip saddr @vips drop",
            f"add rule {t} in ip daddr @vips drop",
        ]
    else:
        nd = "nd-neighbor-solicit, nd-neighbor-advert"
        lines += [
            f"add set {t} neighbor-discovery {{ type icmpv6_type; flags constant; "
            f"elements = {{ {nd} }}; }}",
            f"add chain {t} out {{ {hook.format('output')} }}",
            f"add chain {t} in {{ {hook.format('input')} }}",
            f"add chain {t} in_link_local",
            f"add chain {t} out_link_local",
            f"add rule {t} out icmpv6 type @neighbor-discovery accept",
            f"add rule {t} out ip6 saddr fe80::/10 goto out_link_local",
            f"add rule {t} out ip6 saddr @vips drop",
            f"add rule {t} in icmpv6 type @neighbor-discovery accept",
            f"add rule {t} in ip6 daddr fe80::/10 goto in_link_local",
            f"add rule {t} in ip6 daddr @vips drop",
        ]
    return "".join(line + "\n" for line in lines)


def element_script(verb: str, addresses: Iterable[IPAddr], table: str = TABLE) -> str:
    """``add``/``delete element`` commands for ``addresses`` (one per family present)."""
    out = ""
    for version in (4, 6):
        mine = sorted(str(a) for a in addresses if a.version == version)
        if mine:
            out += f"{verb} element {_family(version)} {table} vips {{ {', '.join(mine)} }}\n"
    return out


class VipFirewall:
    """The blocked VIPs of every instance of one daemon, applied as nftables changes."""

    def __init__(self, nft: str = "nft", table: str = TABLE) -> None:
        self._nft = nft
        self._table = table
        self._by_instance: dict[str, frozenset[IPAddr]] = {}
        self._blocked: set[IPAddr] = set()
        self._made: set[int] = set()  # address families whose table we made
        self._lock = asyncio.Lock()
        self._broken = False  # nft missing or refusing: said once, then nothing is tried
        self.failures = 0

    @property
    def blocked(self) -> frozenset[IPAddr]:
        return frozenset(self._blocked)

    async def hold(self, instance: str, addresses: Iterable[IPAddr]) -> None:
        """Block exactly ``addresses`` for ``instance`` (empty: none)."""
        async with self._lock:
            self._by_instance[instance] = frozenset(addresses)
            want: set[IPAddr] = set().union(*self._by_instance.values())
            add, remove = want - self._blocked, self._blocked - want
            if not add and not remove:
                return
            script = "".join(
                table_script(v, self._table)
                for v in (4, 6)
                if v not in self._made and any(a.version == v for a in add)
            )
            script += element_script("delete", remove, self._table)
            script += element_script("add", add, self._table)
            if await self._run(script, f"{instance}: blocking no_accept VIPs"):
                for v in sorted({a.version for a in add} - self._made):
                    log.info(
                        "%s: no_accept: traffic to and from its VIPs dropped (nftables table "
                        "%s %s, as keepalived)",
                        instance,
                        _family(v),
                        self._table,
                    )
                self._made |= {a.version for a in add}
                self._blocked = want

    async def close(self) -> None:
        """Delete the tables this daemon made (at exit)."""
        async with self._lock:
            script = "".join(f"delete table {_family(v)} {self._table}\n" for v in self._made)
            if script:
                await self._run(script, "removing the no_accept tables")
            self._made.clear()
            self._blocked.clear()
            self._by_instance.clear()

    async def _run(self, script: str, what: str) -> bool:
        if self._broken:
            return False
        import shutil  # only when a no_accept master needs nft: not on the start path

        path = shutil.which(self._nft)
        if path is None:
            self._broken = True
            log.error(
                "%s: no %s command: traffic to the VIPs is not blocked (keepalived uses "
                "nftables for no_accept / vrrp_strict)",
                what,
                self._nft,
            )
            return False
        proc = await asyncio.create_subprocess_exec(
            path,
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(script.encode())
        if proc.returncode != 0:
            self.failures += 1
            log.error("%s: nft failed: %s", what, err.decode(errors="replace").strip())
            return False
        return True
