"""Which header fields a proxy forwards, drops or writes itself (RFC 9110 §7.6, RFC 7239).

Names are lower-case ``bytes``, as they are compared on the hot path; values are ``bytes`` as
they came off the wire. Pure: no sockets.
"""

from __future__ import annotations

# RFC 9110 §7.6.1: hop-by-hop fields, never forwarded (each hop frames the message itself),
# plus what the client must not be able to claim on the gateway's behalf (RFC 7239 and the
# X-Forwarded-* convention: the gateway writes its own, it does not append to the client's).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)
CLIENT_CLAIMS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip"}
)
DROP_FROM_REQUEST = HOP_BY_HOP | CLIENT_CLAIMS
DROP_FROM_RESPONSE = HOP_BY_HOP
# Fields a ``Connection: <name>`` list may not strip: the message's routing and framing.
PROTECTED = frozenset({b"host", b"content-length"})
# RFC 9110 §9.2.2: a request that failed before any response byte may be sent again.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

NO_TOKENS: frozenset[bytes] = frozenset()


_TOKENS: dict[bytes, frozenset[bytes]] = {}  # one field's value -> its tokens
_TOKENS_MAX = 256


def connection_tokens(values: list[bytes]) -> frozenset[bytes]:
    """The lower-case option names of every Connection field (RFC 9110 §7.6.1).

    Nearly every message has one Connection field, and nearly always the same few values
    (``keep-alive``, ``close``, ``upgrade``): those answers are remembered.
    """
    if not values:
        return NO_TOKENS
    if len(values) == 1:
        hit = _TOKENS.get(values[0])
        if hit is None:
            hit = frozenset(t.strip().lower() for t in values[0].split(b",") if t.strip())
            if len(_TOKENS) >= _TOKENS_MAX:
                _TOKENS.clear()
            _TOKENS[values[0]] = hit
        return hit
    return frozenset(t.strip().lower() for v in values for t in v.split(b",") if t.strip())


def forwarded_fields(client_ip: str, proto: str, proxies: tuple[str, ...] = ()) -> bytes:
    """X-Forwarded-For/-Proto and RFC 7239 Forwarded for one client: written from
    ``client_ip`` and, behind trusted proxies, the proxies it came through (``proxies``, the
    gateway's TCP peer last), as nginx appends each hop; ``proto`` is the gateway's own."""
    if not proxies:
        node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
        return (
            f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n"
            f"Forwarded: for={node};proto={proto}\r\n"
        ).encode("latin-1")
    hops = (client_ip, *proxies)
    nodes = ", ".join(f'for="[{h}]"' if ":" in h else f"for={h}" for h in hops)
    return (
        f"X-Forwarded-For: {', '.join(hops)}\r\nX-Forwarded-Proto: {proto}\r\n"
        f"Forwarded: {nodes};proto={proto}\r\n"
    ).encode("latin-1")
