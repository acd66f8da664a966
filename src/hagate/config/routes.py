"""virtual_routes and virtual_rules: keepalived 2.2.7's syntax, the subset hagate installs.

keepalived (vrrp_iproute.c alloc_route, vrrp_iprule.c alloc_rule) reads a whole ip-route /
ip-rule vocabulary; hagate takes the common part and names the rest with file:line, so a
route that would be installed differently is never silently accepted. keepalived drops a
route or rule it cannot read with an error; so does hagate.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from hagate.config.blocks import location
from hagate.config.model import IPNetwork, RouteType, VirtualRoute, VirtualRule
from hagate.config.parser import Statement
from hagate.config.values import Values

TABLES = {"main": 254, "local": 255, "default": 253}  # iproute2's reserved names
ROUTE_SCOPES = frozenset({"global", "universe", "site", "link", "host", "nowhere"})
_TYPES = {t.name.lower(): t for t in RouteType}
# keepalived's route keywords that hagate does not install (named, entry dropped)
_ROUTE_UNSUPPORTED = frozenset(
    {
        "as", "from", "tos", "dsfield", "protocol", "onlink", "encap", "expires", "mtu",
        "hoplimit", "advmss", "rtt", "rttvar", "reordering", "window", "cwnd", "ssthresh",
        "realms", "rto_min", "initcwnd", "initrwnd", "features", "quickack", "congctl", "pref",
        "ttl-propagate", "fastopen_no_cookie", "or", "nexthop", "track_group", "local",
        "broadcast", "anycast", "multicast", "nat", "xresolve",
    }
)  # fmt: skip
_RULE_UNSUPPORTED = frozenset(
    {
        "tos", "dsfield", "fwmark", "realms", "suppress_prefixlength", "suppress_ifgroup",
        "sup_group", "tunnel-id", "uidrange", "l3mdev", "protocol", "ipproto", "sport",
        "dport", "goto", "nop", "blackhole", "prohibit", "unreachable", "type",
        "track_group",
    }
)  # fmt: skip


def table_number(text: str) -> int | None:
    """A routing table: a number 1..2^32-1 or main/local/default (hagate reads no
    /etc/iproute2/rt_tables)."""
    if text in TABLES:
        return TABLES[text]
    try:
        number = int(text, 0)
    except ValueError:
        return None
    return number if 0 < number < 2**32 else None


def _network(v: Values, entry: Statement, text: str, family: int | None) -> IPNetwork | None:
    """keepalived parse_route: ADDR[/LEN] or default/any/all (the family's 0/0)."""
    if text in ("default", "any", "all"):
        return IPv6Network("::/0") if family == 6 else IPv4Network("0.0.0.0/0")
    try:
        return ip_network(text)
    except ValueError:
        pass
    try:
        loose = ip_network(text, strict=False)
    except ValueError:
        v.error(entry, f"'{text}' is not an address or prefix; the entry is ignored")
        return None
    v.error(entry, f"{text} has host bits set (the prefix is {loose}); the entry is ignored")
    return None


def _same_family(v: Values, entry: Statement, f: dict[str, Any], version: int) -> bool:
    family = f.setdefault("_family", version)
    if family != version:
        v.error(entry, "mixes IPv4 and IPv6 addresses (keepalived drops it)")
        return False
    return True


def virtual_routes(v: Values, st: Statement) -> tuple[VirtualRoute, ...]:
    return v.parsed(st, _route)


def _route(v: Values, entry: Statement) -> VirtualRoute | None:
    words = entry.words
    f: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in ("inet", "inet6"):
            if not _same_family(v, entry, f, 4 if word == "inet" else 6):
                return None
            i += 1
            continue
        if word in _ROUTE_UNSUPPORTED:
            v.error(entry, f"route option '{word}' is not supported by hagate; route ignored")
            return None
        if word == "no_track":
            f["track"] = False
            i += 1
            continue
        if word in ("via", "gw", "src", "dev", "oif", "table", "scope", "metric", "priority",
                    "preference"):  # fmt: skip
            if value is None:
                v.error(entry, f"'{word}' needs a value; route ignored")
                return None
            if word in ("via", "gw", "src"):
                if word == "via" and value in ("inet", "inet6") and i + 2 < len(words):
                    i += 1
                    value = words[i + 1]
                addr = v.address(entry, value)
                if addr is None or not _same_family(v, entry, f, addr.version):
                    return None
                f["via" if word != "src" else "src"] = addr
                if word == "gw":
                    v.warning(entry, '"gw" for routes is deprecated; use "via" (keepalived)')
            elif word in ("dev", "oif"):
                f["dev"] = value
            elif word == "table":
                table = table_number(value)
                if table is None:
                    v.error(entry, f"routing table '{value}' is not a number or main/local/"
                            "default; route ignored")  # fmt: skip
                    return None
                f["table"] = table
            elif word == "scope":
                if value not in ROUTE_SCOPES:
                    v.error(entry, f"scope '{value}' is not one of "
                            f"{', '.join(sorted(ROUTE_SCOPES))}; route ignored")  # fmt: skip
                    return None
                f["scope"] = "global" if value == "universe" else value
            else:
                metric = v.integer(entry, value, 0, 2**32 - 1)
                if metric is None:
                    return None
                f["metric"] = metric
            i += 2
            continue
        # the destination, maybe after 'to' and/or a route type (keepalived's order)
        if word == "to" and value is not None:
            i += 1
            word, value = value, words[i + 1] if i + 1 < len(words) else None
        if word in _TYPES and value is not None:
            f["type"] = _TYPES[word]
            i += 1
            word = value
        if "dst" in f:
            v.error(entry, f"'{word}' not understood (a second destination?); route ignored")
            return None
        dst = _network(v, entry, word, f.get("_family"))
        if dst is None or not _same_family(v, entry, f, dst.version):
            return None
        f["dst"] = dst
        i += 1
    if "dst" not in f:
        v.error(entry, "a route needs a destination (keepalived drops it)")
        return None
    f.pop("_family", None)
    route_type = f.get("type", RouteType.UNICAST)
    if route_type is not RouteType.UNICAST and ("via" in f or "dev" in f):
        v.error(entry, f"a {route_type.name.lower()} route takes no via/dev; route ignored")
        return None
    if route_type is RouteType.UNICAST and "via" not in f and "dev" not in f:
        v.error(entry, "a unicast route needs 'via' or 'dev'; route ignored")
        return None
    if "scope" in f and f["dst"].version == 6:
        v.warning(entry, "scope applies to IPv4 routes only (keepalived); the kernel ignores it")
    return VirtualRoute(where=location(entry), **f)


def virtual_rules(v: Values, st: Statement) -> tuple[VirtualRule, ...]:
    """A rule with no address is IPv4 unless ``inet6`` (keepalived)."""
    return v.parsed(st, _rule)


def _rule(v: Values, entry: Statement) -> VirtualRule | None:
    words = entry.words
    f: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in ("inet", "inet6"):
            if not _same_family(v, entry, f, 4 if word == "inet" else 6):
                return None
            i += 1
            continue
        if word in ("not", "no_track"):
            f["invert" if word == "not" else "track"] = word == "not"
            i += 1
            continue
        if word in _RULE_UNSUPPORTED:
            v.error(entry, f"rule option '{word}' is not supported by hagate; rule ignored")
            return None
        if word not in ("from", "to", "table", "lookup", "priority", "preference", "order",
                        "iif", "dev", "oif"):  # fmt: skip
            v.error(entry, f"'{word}' not understood in a rule; rule ignored")
            return None
        if value is None:
            v.error(entry, f"'{word}' needs a value; rule ignored")
            return None
        if word in ("from", "to"):
            net = _network(v, entry, value, f.get("_family"))
            if net is None or not _same_family(v, entry, f, net.version):
                return None
            f["src" if word == "from" else "dst"] = net
        elif word in ("table", "lookup"):
            table = table_number(value)
            if table is None:
                v.error(entry, f"routing table '{value}' is not a number or main/local/default"
                        " (table 0 is not valid); rule ignored")  # fmt: skip
                return None
            f["table"] = table
        elif word in ("priority", "preference", "order"):
            number = v.integer(entry, value, 0, 2**32 - 1)
            if number is None:
                return None
            f["priority"] = number
        else:
            f["iif" if word in ("iif", "dev") else "oif"] = value
        i += 2
    if "table" not in f:
        v.error(entry, "a rule needs a table (hagate installs lookup rules only); rule ignored")
        return None
    family: int = f.pop("_family", 4)
    if "priority" not in f:
        f["priority"] = v.next_rule_priority[family]
        v.next_rule_priority[family] -= 1
        v.warning(
            entry,
            f"rule has no priority: keepalived sets {f['priority']} (16384 down, in file "
            "order); this is probably not what you want",
        )
    return VirtualRule(family=family, where=location(entry), **f)
