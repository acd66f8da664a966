"""vrrp_instance: keywords, then keepalived's cross-keyword rules and defaults."""

from __future__ import annotations

import math
from ipaddress import IPv4Address
from typing import Any

from hagate.config import defaults as D
from hagate.config.blocks import (
    NOTIFY_KEYWORDS,
    TRACK_WEIGHTS,
    location,
    notify_script,
    track_interfaces,
    track_scripts,
    unknown,
    unsupported,
)
from hagate.config.findings import Impact
from hagate.config.model import (
    AuthType,
    GlobalDefs,
    Location,
    State,
    UnicastPeer,
    VirtualIp,
    VrrpInstance,
)
from hagate.config.parser import Statement
from hagate.config.routes import virtual_routes, virtual_rules
from hagate.config.values import Values

INSTANCE_UNSUPPORTED = frozenset(
    {
        "use_vmac_addr", "use_ipvlan", "vrf", "track_bfd", "track_src_ip",
        "old_unicast_checksum", "garp_extra_if",
        "skip_check_adv_addr", "strict_mode", "debug", "kernel_rx_buf_size",
        "linkbeat_use_polling", "promote_secondaries", "dont_track_primary", "native_ipv6",
        "unicast_chksum_compat", "garp_extra_if_vmac",
    }
)  # fmt: skip

# Instance-only keywords: at top level they get "belongs inside a vrrp_instance".
INSTANCE_KEYWORDS = frozenset(
    {
        "state", "interface", "virtual_router_id", "priority", "advert_int", "version",
        "mcast_src_ip", "unicast_src_ip", "unicast_peer", "check_unicast_src",
        "authentication", "auth_type", "auth_pass", "virtual_ipaddress",
        "virtual_ipaddress_excluded", "nopreempt", "preempt", "preempt_delay",
        "track_script", "track_interface", "garp_master_delay", "garp_master_repeat",
        "garp_master_refresh", "garp_master_refresh_repeat", "garp_lower_prio_delay",
        "garp_lower_prio_repeat", "down_timer_adverts", "v3_checksum_as_v2",
        "lower_prio_no_advert", "higher_prio_send_advert", "notify_master_rx_lower_pri",
        "notify_priority_changes", "notify_deleted", "mcast_dst_ip", "unicast_ttl",
        "track_process", "track_file",
        "unicast_fault_no_peer", "accept", "no_accept", "use_vmac", "vmac_xmit_base",
        "virtual_routes", "virtual_rules",
        *NOTIFY_KEYWORDS,
    }
)  # fmt: skip

_SECONDS = {
    "garp_master_delay": (0.0, 255.0),
    "garp_master_refresh": (0.0, 2**31 - 1.0),
    "garp_lower_prio_delay": (0.0, 255.0),
    "preempt_delay": D.PREEMPT_DELAY_RANGE,
}
_INTEGERS = {
    "garp_master_repeat": (1, 255),
    "garp_master_refresh_repeat": (1, 255),
    "garp_lower_prio_repeat": (1, 255),
    "down_timer_adverts": D.DOWN_TIMER_ADVERTS_RANGE,
}
_SCOPES = frozenset({"site", "link", "host", "nowhere", "global"})
_VIP_FLAGS = frozenset(
    {"home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track", "use_vmac"}
)


def virtual_ips(v: Values, st: Statement) -> tuple[VirtualIp, ...]:
    return v.parsed(st, _virtual_ip)


def _virtual_ip(v: Values, entry: Statement) -> VirtualIp | None:
    text = entry.args[0].text
    addr_text, _, prefix_text = text.partition("/")
    address = v.address(entry, addr_text) if addr_text else None
    if address is None:
        if not addr_text:
            v.error(entry, f"'{text}' is not an IP address")
        return None
    max_prefix = 32 if address.version == 4 else 128
    prefixlen = max_prefix
    if prefix_text:
        number = v.integer(entry, prefix_text, 0, max_prefix)
        if number is None:
            return None
        prefixlen = number
    f: dict[str, Any] = {}
    words = entry.words[1:]
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("dev", "label", "brd", "scope", "peer", "preferred_lft", "track_group"):
            if i + 1 >= len(words):
                v.error(entry, f"'{word}' needs a value")
                break
            value = words[i + 1]
            if word == "brd":
                brd = v.address(entry, value)
                if isinstance(brd, IPv4Address) and address.version == 4:
                    f["brd"] = brd
                elif brd is not None:
                    v.error(entry, f"brd {value}: only an IPv4 broadcast address fits here")
            elif word == "scope":
                if value not in _SCOPES:
                    v.error(entry, f"scope '{value}' is not one of {', '.join(sorted(_SCOPES))}")
                else:
                    f["scope"] = value
            elif word in ("dev", "label"):
                f[word] = value
            else:
                v.warning(entry, f"'{word}' is not supported by hagate; ignored")
            i += 2
            continue
        if word in _VIP_FLAGS:
            v.warning(entry, f"'{word}' is not supported by hagate; ignored")
        else:
            v.error(entry, f"'{word}' not understood in a virtual address")
        i += 1
    return VirtualIp(address, prefixlen, where=location(entry), **f)


def unicast_peers(v: Values, st: Statement) -> list[tuple[UnicastPeer, Statement]]:
    """The block's peers, each with its entry (for findings)."""
    out: list[tuple[UnicastPeer, Statement]] = []
    for entry in v.entries(st):
        address = v.address(entry, entry.args[0].text)
        if address is None:
            continue
        ttl: dict[str, int] = {}
        words = entry.words[1:]
        i = 0
        while i < len(words):
            if words[i] in ("min_ttl", "max_ttl") and i + 1 < len(words):
                number = v.integer(entry, words[i + 1], *D.TTL_RANGE)
                if number is not None:
                    ttl[words[i]] = number
                i += 2
            else:
                v.error(entry, f"'{words[i]}' not understood (expected min_ttl N / max_ttl N)")
                i += 1
        if ttl.get("min_ttl", 0) > ttl.get("max_ttl", 255):
            v.error(entry, "min_ttl is above max_ttl; no advert could pass")
        out.append((UnicastPeer(address, ttl.get("min_ttl"), ttl.get("max_ttl")), entry))
    return out


def _same_family(
    v: Values,
    st: Statement,
    name: str,
    f: dict[str, Any],
    version: int,
    what: str,
    vip: VirtualIp | None = None,
) -> bool:
    """keepalived: the first address configured (source, peer or VIP, in file order) sets
    the instance's family; a later one of the other family is skipped with an error."""
    where = vip.where if vip is not None else Location(st.file, st.line)
    family, origin = f.setdefault("_family", (version, f"{st.keyword} at line {where.line}"))
    if family == version:
        return True
    v.r.error(
        where.file,
        where.line,
        st.keyword,
        f"({name}) {what} is IPv{version} but the instance is IPv{family} (set by "
        f"{origin}); keepalived skips it",
    )
    return False


def _authentication(v: Values, st: Statement, f: dict[str, Any]) -> None:
    for item in v.block(st):
        v.no_block(item)
        if item.keyword == "auth_type":
            text = v.first(item)
            if text is None:
                continue
            try:
                f["auth_type"] = AuthType[text.upper()] if text.upper() != "NONE" else None
            except KeyError:
                v.error(item, f"'{text}' is not PASS or AH")
            if f.get("auth_type") is None:
                f.pop("auth_type", None)
        elif item.keyword == "auth_pass":
            if not item.args:
                # keepalived 2.2.7 stops on a missing parameter (exit 2)
                v.r.error(item.file, item.line, item.keyword, "needs a password",
                          Impact.CANNOT_RUN)  # fmt: skip
                continue
            # keepalived takes the rest of the line, and uses 8 octets (RFC 2338 §5.3.10).
            password = " ".join(item.words)
            if len(password.encode()) > D.AUTH_PASS_LEN:
                v.warning(
                    item,
                    f"password longer than {D.AUTH_PASS_LEN} characters; keepalived (and hagate) "
                    f"use only the first {D.AUTH_PASS_LEN}: "
                    f"'{password.encode()[: D.AUTH_PASS_LEN].decode(errors='replace')}'",
                )
                password = password.encode()[: D.AUTH_PASS_LEN].decode(errors="ignore")
            f["auth_pass"] = password
            f["_auth_pass_at"] = item
        else:
            unknown(v, item, "authentication")


def parse_instance(v: Values, st: Statement, g: GlobalDefs) -> VrrpInstance | None:
    """One vrrp_instance with keepalived's defaults and cross-keyword rules applied."""
    name = v.first(st)
    if name is None:
        return None
    f: dict[str, Any] = {}
    seen: dict[str, Statement] = {}
    for item in v.block(st, used=1):
        key = item.keyword
        seen[key] = item
        if key not in (
            "authentication",
            "virtual_ipaddress",
            "virtual_ipaddress_excluded",
            "unicast_peer",
            "track_script",
            "track_interface",
            "track_process",
            "track_file",
            "virtual_routes",
            "virtual_rules",
        ):
            v.no_block(item)
        if key == "state":
            text = v.first(item)
            if text is not None:
                try:
                    f["state"] = State[text.upper()]
                except KeyError:
                    v.error(item, f"'{text}' is not MASTER or BACKUP; keepalived uses BACKUP")
        elif key == "interface":
            text = v.first(item)
            if text is not None:
                f["interface"] = text
        elif key == "virtual_router_id":
            number = v.first_integer(item, *D.VRID_RANGE)
            if number is not None:
                f["virtual_router_id"] = number
        elif key == "priority":
            otherwise = f"keepalived uses the default {D.PRIORITY}"
            number = v.first_integer(item, *D.PRIORITY_RANGE, otherwise=otherwise)
            if number is not None:
                f["priority"] = number
        elif key == "advert_int":
            value = v.first_seconds(item, *D.ADVERT_INT_RANGE)
            if value is not None:
                f["advert_int"] = value
        elif key == "version":
            number = v.first_integer(item, 2, 3)
            if number is not None:
                f["version"] = number
        elif key in ("mcast_src_ip", "unicast_src_ip"):
            text = v.first(item)
            addr = v.address(item, text) if text is not None else None
            if addr is not None and _same_family(v, item, name, f, addr.version, str(addr)):
                f[key] = addr
        elif key == "unicast_peer":
            f["unicast_configured"] = True
            peers = tuple(
                p
                for p, entry in unicast_peers(v, item)
                if _same_family(v, entry, name, f, p.address.version, str(p.address))
            )
            f["unicast_peers"] = f.get("unicast_peers", ()) + peers
        elif key in ("check_unicast_src", "v3_checksum_as_v2", "smtp_alert"):
            flag = v.flag(item)
            if flag is not None:
                f[key] = flag
            if key == "v3_checksum_as_v2":
                v.warning(item, "not known to keepalived 2.2.7 (added in a later release)")
        elif key == "authentication":
            _authentication(v, item, f)
        elif key == "virtual_ipaddress":
            vips = tuple(
                vip
                for vip in virtual_ips(v, item)
                if _same_family(v, item, name, f, vip.address.version, str(vip.address), vip)
            )
            f["virtual_ipaddresses"] = f.get("virtual_ipaddresses", ()) + vips
        elif key == "virtual_ipaddress_excluded":
            field = "virtual_ipaddresses_excluded"
            f[field] = f.get(field, ()) + virtual_ips(v, item)
        elif key == "nopreempt":
            v.extra(item, 0)
            f["nopreempt"] = True
        elif key == "preempt":
            v.extra(item, 0)
            f["nopreempt"] = False
        elif key in _SECONDS:
            value = v.first_seconds(item, *_SECONDS[key])
            if value is not None:
                f[key] = value
        elif key in _INTEGERS:
            number = v.first_integer(item, *_INTEGERS[key])
            if number is not None:
                f[key] = number
        elif key == "track_script":
            f["track_scripts"] = f.get("track_scripts", ()) + track_scripts(v, item)
        elif key == "track_interface":
            f["track_interfaces"] = f.get("track_interfaces", ()) + track_interfaces(v, item)
        elif key in ("track_process", "track_file"):
            field = "track_processes" if key == "track_process" else "track_files"
            f[field] = f.get(field, ()) + track_scripts(v, item, TRACK_WEIGHTS)
        elif key in NOTIFY_KEYWORDS or key == "notify_master_rx_lower_pri":
            f[key] = notify_script(v, item)
        elif key in ("lower_prio_no_advert", "higher_prio_send_advert", "notify_priority_changes"):
            flag = v.flag(item)
            if flag is not None:
                f[key] = flag
        elif key == "mcast_dst_ip":
            text = v.first(item)
            addr = v.address(item, text) if text is not None else None
            if addr is not None and (
                not addr.is_multicast or (addr.version == 6 and not addr.is_link_local)
            ):
                link = " link-local" if addr.version == 6 else ""
                v.error(item, f"({name}) mcast_dst_ip {addr} is not{link} multicast; skipped")
            elif addr is not None and _same_family(v, item, name, f, addr.version, str(addr)):
                f["mcast_dst_ip"] = addr
        elif key == "unicast_ttl":
            number = v.first_integer(item, 0, 255)
            if number is not None:
                f["unicast_ttl"] = number
            f["unicast_configured"] = True
        elif key == "unicast_fault_no_peer":
            v.extra(item, 0)
            f["unicast_fault_no_peer"] = f["unicast_configured"] = True
        elif key in ("accept", "no_accept"):
            v.extra(item, 0)
            f["accept"] = key == "accept"
        elif key == "use_vmac":  # keepalived: an optional interface name (default vrrp.VRID)
            v.extra(item, 1)
            f["use_vmac"] = item.args[0].text if item.args else ""
        elif key == "vmac_xmit_base":
            v.extra(item, 0)
            f["vmac_xmit_base"] = True
        elif key == "notify_deleted":
            f["notify_deleted"] = True
            if item.args:
                f["notify_deleted_script"] = notify_script(v, item)
        elif key == "virtual_routes":
            f["virtual_routes"] = f.get("virtual_routes", ()) + virtual_routes(v, item)
        elif key == "virtual_rules":
            f["virtual_rules"] = f.get("virtual_rules", ()) + virtual_rules(v, item)
        elif key in INSTANCE_UNSUPPORTED:
            unsupported(v, item, "vrrp_instance")
        else:
            unknown(v, item, "vrrp_instance")
    return _complete(v, st, name, f, seen, g)


def max_addresses(family: int, version: int, mtu: int = D.DEFAULT_MTU) -> int:
    """How many VIPs one advert carries (keepalived vrrp_complete_instance): the MTU less
    Ethernet, IP and VRRP headers (and v2's 8 octets of authentication), in addresses, and
    at most 255 (the 8-bit count field, RFC 3768 §5.3.5 / RFC 9568 §5.2.5)."""
    if family == 4:
        header, size = 14 + 20 + 8 + (D.AUTH_PASS_LEN if version == 2 else 0), 4
    else:
        header, size = 14 + 40 + 8, 16
    return max(0, min(D.VRRP_MAX_ADDR, (mtu - header) // size))


def _fit_advert(v: Values, name: str, f: dict[str, Any], family: int, version: int) -> None:
    """keepalived moves VIPs beyond what an advert carries to the excluded VIPs (held while
    master, not advertised); ``check`` assumes Ethernet's MTU of 1500."""
    vips: tuple[VirtualIp, ...] = f.get("virtual_ipaddresses", ())
    limit = max_addresses(family, version)
    if len(vips) <= limit:
        return
    first = vips[limit]
    v.r.error(
        first.where.file,
        first.where.line,
        "virtual_ipaddress",
        f"({name}) {len(vips)} VIPs: an advert carries at most {limit} (IPv{family}, MTU "
        f"{D.DEFAULT_MTU}); keepalived moves the other {len(vips) - limit}, from {first.address} "
        "on, to virtual_ipaddress_excluded (held while master, not advertised)",
    )
    f["virtual_ipaddresses"] = vips[:limit]
    f["virtual_ipaddresses_excluded"] = vips[limit:] + f.get("virtual_ipaddresses_excluded", ())


def _complete(
    v: Values,
    st: Statement,
    name: str,
    f: dict[str, Any],
    seen: dict[str, Statement],
    g: GlobalDefs,
) -> VrrpInstance | None:
    """keepalived's vrrp_complete_instance rules, in its order, as findings."""
    auth_at = f.pop("_auth_pass_at", None)
    if "virtual_router_id" not in f:
        v.error(st, f"({name}) has no valid virtual_router_id; the instance is ignored")
        return None
    state: State = f.get("state", State.BACKUP)
    # keepalived: state MASTER with no priority configured means the address owner.
    if "priority" not in f and "priority" not in seen and state is State.MASTER:
        f["priority"] = D.PRIORITY_OWNER
        v.warning(
            seen.get("state", st),
            f"({name}) state MASTER without a priority: keepalived makes this the address "
            f"owner, priority {D.PRIORITY_OWNER}; write 'priority' explicitly",
        )
    priority: int = f.get("priority", D.PRIORITY)

    vips: tuple[VirtualIp, ...] = f.get("virtual_ipaddresses", ())
    family: int = f.pop("_family", (4, ""))[0]
    if not vips:
        v.warning(st, f"({name}) no virtual_ipaddress: this instance protects no address")

    # Version: global default, IPv6 always VRRPv3 (RFC 9568 is the only IPv6 VRRP).
    version: int = f.get("version", g.vrrp_version)
    # keepalived checks advert_int against an explicit 'version 2' before IPv6 forces v3.
    checked_version = f.get("version", version if family == 4 else 3)
    if family == 6 and version == 2:
        where = seen.get("version")
        if where is not None:
            v.warning(where, f"({name}) IPv6 addresses need VRRPv3; version 3 is used")
        version = 3
    f["version"] = version

    advert = f.get("advert_int", D.ADVERT_INT)
    if checked_version == 2 and advert != int(advert):
        # RFC 3768 §5.3.7: whole seconds on the wire.
        rounded = max(1, math.floor(advert + 0.5))
        v.error(
            seen["advert_int"],
            f"({name}) VRRPv2 advert_int must be whole seconds; {advert:g} is rounded to {rounded}",
        )
        f["advert_int"] = float(rounded)
    elif version == 3 and advert > D.ADVERT_INT_V3_MAX:
        # RFC 9568 §5.2.7: 12 bits of centiseconds.
        v.error(
            seen["advert_int"],
            f"({name}) VRRPv3 advert_int is at most {D.ADVERT_INT_V3_MAX}s; "
            f"{D.ADVERT_INT_V3_MAX} is used",
        )
        f["advert_int"] = D.ADVERT_INT_V3_MAX
    elif version == 3 and advert < 0.01:
        f["advert_int"] = 0.01

    _fit_advert(v, name, f, family, version)

    if f.get("auth_type") is not None and version == 3:
        v.error(
            seen["authentication"],
            f"({name}) VRRPv3 has no authentication (RFC 9568); auth_type is ignored",
        )
        f.pop("auth_type")
        f.pop("auth_pass", None)
    elif f.get("auth_type") is AuthType.AH:
        # keepalived 2.2.7 runs IPSEC-AH (RFC 2402 over VRRPv2); hagate does not, and its
        # daemon refuses the instance (hagate.bridge): a hagate-only error, exit 1.
        at = seen["authentication"]
        v.r.error(
            at.file,
            at.line,
            "auth_type",
            f"({name}) auth_type AH is not supported by hagate (the daemon refuses to "
            "start); use PASS or no authentication",
            Impact.OTHER,
        )
    elif f.get("auth_type") is AuthType.PASS and not f.get("auth_pass"):
        v.error(seen["authentication"], f"({name}) auth_type PASS needs an auth_pass")
    elif f.get("auth_type") is None and auth_at is not None:
        v.warning(auth_at, f"({name}) auth_pass without auth_type is ignored")
        f.pop("auth_pass", None)

    if f.get("preempt_delay") and state is State.MASTER and not f.get("nopreempt"):
        v.error(
            seen["preempt_delay"],
            f"({name}) preempt_delay will not work with initial state MASTER; keepalived clears it",
        )
        f["preempt_delay"] = 0.0
    if f.get("nopreempt"):
        if state is State.MASTER:
            v.error(
                seen["nopreempt"],
                f"({name}) nopreempt does not work with state MASTER; keepalived clears it "
                "(use state BACKUP on every node for a sticky master)",
            )
            f["nopreempt"] = False
        elif priority == D.PRIORITY_OWNER:
            v.error(
                seen["nopreempt"],
                f"({name}) nopreempt is incompatible with priority 255 (the address owner "
                "always preempts, RFC 3768 §6.4.2); keepalived clears it",
            )
            f["nopreempt"] = False
        elif f.get("preempt_delay"):
            v.error(
                seen["preempt_delay"],
                f"({name}) preempt_delay is incompatible with nopreempt; keepalived resets it",
            )
            f["preempt_delay"] = 0.0

    peers: tuple[UnicastPeer, ...] = f.get("unicast_peers", ())
    src = f.get("unicast_src_ip")
    if "unicast_src_ip" in seen or "check_unicast_src" in seen:
        f["unicast_configured"] = True
    if not peers and f.get("unicast_fault_no_peer"):
        v.warning(
            seen["unicast_fault_no_peer"],
            f"({name}) unicast_fault_no_peer and no unicast_peer: keepalived keeps the "
            "instance in FAULT (it cannot run unicast without a peer)",
        )
    elif not peers and "unicast_ttl" in seen:
        v.error(
            seen["unicast_ttl"],
            f"({name}) unicast_ttl without unicast peers: keepalived resets it",
        )
        f.pop("unicast_ttl", None)
    if not peers and not f.get("unicast_fault_no_peer"):
        used = [k for k in ("unicast_src_ip", "check_unicast_src") if k in seen]
        if used:
            v.warning(
                seen[used[0]],
                f"({name}) {used[0]} without any unicast_peer: keepalived falls back to "
                "multicast (deprecated); add unicast_peer { PEER_IP } or remove it",
            )
    else:
        for peer in peers:
            if src is not None and peer.address == src:
                v.error(seen["unicast_peer"], f"({name}) {peer.address} is its own peer")
        if any(p.min_ttl is not None or p.max_ttl is not None for p in peers):
            f["check_unicast_src"] = True  # keepalived.conf(5): min/max_ttl turn it on

    if "interface" not in f and not peers:
        v.error(st, f"({name}) no 'interface': a multicast instance needs one")

    # Defaults from global_defs (keepalived.conf(5): "default to global parameters").
    inherited = {
        "garp_master_delay": g.vrrp_garp_master_delay,
        "garp_master_repeat": g.vrrp_garp_master_repeat,
        "garp_master_refresh": g.vrrp_garp_master_refresh,
        "garp_master_refresh_repeat": g.vrrp_garp_master_refresh_repeat,
        "garp_lower_prio_delay": g.vrrp_garp_lower_prio_delay,
        "garp_lower_prio_repeat": g.vrrp_garp_lower_prio_repeat,
        "down_timer_adverts": g.vrrp_down_timer_adverts,
        "v3_checksum_as_v2": g.vrrp_v3_checksum_as_v2,
        "check_unicast_src": g.vrrp_check_unicast_src,
        "smtp_alert": g.smtp_alert,
        "lower_prio_no_advert": g.vrrp_lower_prio_no_advert,
        "higher_prio_send_advert": g.vrrp_higher_prio_send_advert,
    }
    for key, value in inherited.items():
        f.setdefault(key, value)
    if "garp_master_delay" in seen and "garp_lower_prio_delay" not in seen:
        f["garp_lower_prio_delay"] = f["garp_master_delay"]
    if "garp_master_repeat" in seen and "garp_lower_prio_repeat" not in seen:
        f["garp_lower_prio_repeat"] = f["garp_master_repeat"]

    interface = f.get("interface")
    own = [t for t in f.get("track_interfaces", ()) if t.name == interface]
    if own:
        v.error(
            seen["track_interface"],
            f"({name}) track_interface {interface} is the instance's own interface, which is "
            "always tracked; keepalived ignores the entry",
        )
        f["track_interfaces"] = tuple(t for t in f["track_interfaces"] if t.name != interface)

    return VrrpInstance(name=name, where=location(st), **f)
