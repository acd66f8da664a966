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


def connection_tokens(values: list[bytes]) -> frozenset[bytes]:
    """The lower-case option names of every Connection field (RFC 9110 §7.6.1)."""
    if not values:
        return NO_TOKENS
    return frozenset(t.strip().lower() for v in values for t in v.split(b",") if t.strip())


def forwarded_fields(client_ip: str, proto: str) -> bytes:
    """X-Forwarded-For/-Proto and RFC 7239 Forwarded for one client connection."""
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    return (
        f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n"
        f"Forwarded: for={node};proto={proto}\r\n"
    ).encode("latin-1")
