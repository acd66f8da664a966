"""Who the client of a request is when the gateway sits behind reverse proxies it trusts.

A TCP peer in ``[listen] trusted_proxies`` is a proxy (nginx in front of the gateway): the
client it speaks for is named in the ``X-Forwarded-For`` it sends (or, without one, in RFC 7239
``Forwarded: for=``). Each proxy appends the address it got the request from, so the list is
read from the right: trusted hops are skipped and the first address that is not trusted is the
client. Whatever lies to its left was written by that client and is never believed.

The walk stops at the first entry that is not an IP address (``unknown``, an obfuscated
``_node``, garbage) or after :data:`MAX_HOPS` entries, and answers the last hop that was an
address a trusted proxy vouched for: the answer is always an IP address in canonical form,
never a string an attacker chose. Pure: no sockets.

The scheme the client used (``https`` when the proxy terminated TLS) is believed from a trusted
peer too, by :func:`forwarded_proto`: the rightmost ``X-Forwarded-Proto`` entry, the one the
nearest proxy wrote (or RFC 7239 ``proto=`` of the last forwarded-element), and only if it is
exactly ``http`` or ``https``.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[Network, ...]

MAX_HOPS = 20  # entries read from the right before the walk gives up


def _address(text: str) -> Address | None:
    """An address as proxies write it: ``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``,
    ``[2001:db8::1]`` or ``[2001:db8::1]:80``; None for anything else (a zone id too)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        text = text[1:end]
        if ":" not in text:
            return None  # brackets are for IPv6 only
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    if not text or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def trusted_address(addr: Address, trusted: Networks) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # a dual-stack listener's view of an IPv4 peer
    return any(addr in net for net in trusted)


def is_trusted(peer: str, trusted: Networks) -> bool:
    """Whether the TCP peer ``peer`` is one of the trusted proxies."""
    if not trusted:
        return False
    addr = _address(peer)
    return addr is not None and trusted_address(addr, trusted)


def _xff_entries(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",")]


def _forwarded_entries(values: list[str]) -> list[str]:
    """The ``for=`` of each RFC 7239 forwarded-element; an element without one is an
    entry that stops the walk (the proxy that wrote it hid or did not know its client)."""
    out: list[str] = []
    for value in values:
        for element in value.split(","):
            node = ""
            for pair in element.split(";"):
                name, eq, val = pair.partition("=")
                if eq and name.strip().lower() == "for":
                    val = val.strip()
                    if len(val) >= 2 and val[0] == val[-1] == '"':
                        val = val[1:-1].replace("\\", "")
                    node = val
                    break
            out.append(node)
    return out


def forwarded_chain(
    peer: str, xff: list[str] | None, forwarded: list[str] | None, trusted: Networks
) -> list[str]:
    """The hops from the client to the gateway, client first: the client is ``[0]`` and the
    trusted proxies it came through follow, ending with ``peer``. Just ``[peer]`` if the peer
    is not trusted or names no one."""
    if not is_trusted(peer, trusted):
        return [peer]
    if xff:
        entries = _xff_entries(xff)
    elif forwarded:
        entries = _forwarded_entries(forwarded)
    else:
        return [peer]
    chain = [peer]
    for entry in reversed(entries[-MAX_HOPS:] if len(entries) > MAX_HOPS else entries):
        addr = _address(entry)
        if addr is None:
            break  # garbage: the last good hop is the answer
        chain.append(str(addr))
        if not trusted_address(addr, trusted):
            break  # the client
    chain.reverse()
    return chain


def effective_client(
    peer: str, xff: list[str] | None, forwarded: list[str] | None, trusted: Networks
) -> str:
    """The address the gateway treats as the request's client (see the module's doc)."""
    return forwarded_chain(peer, xff, forwarded, trusted)[0]


PROTOS = {"http": "http", "https": "https"}


def _forwarded_protos(values: list[str]) -> list[str]:
    """The ``proto=`` of each RFC 7239 forwarded-element ("" where it names none)."""
    out: list[str] = []
    for value in values:
        for element in value.split(","):
            proto = ""
            for pair in element.split(";"):
                name, eq, val = pair.partition("=")
                if eq and name.strip().lower() == "proto":
                    proto = val.strip().strip('"')
                    break
            out.append(proto)
    return out


def forwarded_proto(xfp: list[str] | None, forwarded: list[str] | None) -> str | None:
    """The scheme a trusted proxy says its client used, or None (then the listener's own).

    Only the last entry is read: it is the one the nearest proxy wrote (nginx's
    ``proxy_set_header X-Forwarded-Proto $scheme`` replaces the field, a load balancer that
    appends writes it last); anything but ``http``/``https`` is not believed."""
    if xfp:
        entries = [part for value in xfp for part in value.split(",")]
    elif forwarded:
        entries = _forwarded_protos(forwarded)
    else:
        return None
    return PROTOS.get(entries[-1].strip().lower()) if entries else None
