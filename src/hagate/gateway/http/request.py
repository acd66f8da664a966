"""A user's request as the front sees it: the head llhttp parsed, what is derived from it,
what the gateway refuses to forward, and the head the device gets.

llhttp (through httptools) is strict by default: it refuses CL+TE, two Content-Lengths,
obs-fold, bare LF, bad chunk sizes and lone CRs, which closes the smuggling shapes. What it
lets through (two Hosts, odd versions, CONNECT, codings other than chunked, an absolute
target naming another site) is checked by :func:`refusal`. Pure: no sockets.
"""

from __future__ import annotations

from hagate.gateway.http.fields import DROP_FROM_REQUEST, PROTECTED, connection_tokens

Header = tuple[bytes, bytes, bytes]  # (lower-case name, name as sent, value)


class Request:
    """One request head as parsed, plus what the front derived from it."""

    __slots__ = (
        "authorization",
        "body",
        "chunked",
        "close",
        "expect",
        "headers",
        "host",
        "hosts",
        "method",
        "target",
        "tokens",
        "too_big",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: str,
        headers: list[Header],
        keep_alive: bool,
        upgrade: bool,
        too_big: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.too_big = too_big
        self.host = b""
        self.hosts = 0
        self.authorization: bytes | None = None
        self.chunked = False
        self.body = False
        self.expect = False
        self.upgrade: bytes | None = None
        conn_values: list[bytes] = []
        for lname, _name, value in headers:
            if lname == b"host":
                self.hosts += 1
                self.host = value
            elif lname == b"content-length":
                self.body = self.body or value.strip() != b"0"
            elif lname == b"transfer-encoding":
                self.chunked = True
                self.body = True
            elif lname == b"connection":
                conn_values.append(value)
            elif lname == b"authorization":
                self.authorization = value
            elif lname == b"upgrade" and upgrade:
                self.upgrade = value
            elif lname == b"expect":
                self.expect = True
        self.tokens = connection_tokens(conn_values) - PROTECTED if conn_values else frozenset()
        self.close = not keep_alive


class End:
    """End of a request body (llhttp's on_message_complete)."""


END = End()
Event = Request | bytes | End  # what the user's parser queues: heads, body bytes, ends


def refusal(req: Request) -> tuple[int, str] | None:
    """What llhttp lets through and a gateway must not forward: (status, message) or None."""
    if req.too_big:
        return 431, "request head too large"
    if req.version not in ("1.1", "1.0"):
        return 505, f"HTTP/{req.version} is not supported"
    if req.method == b"CONNECT":
        return 405, "CONNECT is not supported"
    if req.hosts != 1:
        return 400, "a request needs exactly one Host" if req.hosts else "request has no Host"
    if req.chunked:
        coding = next(v for n, _, v in req.headers if n == b"transfer-encoding")
        if coding.strip().lower() != b"chunked":
            return 501, "only the chunked transfer coding is supported"
    target = req.target
    if not target.startswith(b"/") and target != b"*":
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            return 400, "bad request target"
        authority = rest.split(b"/", 1)[0].split(b"?", 1)[0]
        if authority.lower() != req.host.strip().lower():
            return 400, "request target and Host name different sites"
    return None


def parse_refusal(error: str) -> tuple[int, str]:
    """The answer to what llhttp refused (``"431"``: the head outgrew its limit)."""
    if error == "431":
        return 431, "request head too large"
    return 400, f"bad request: {error}"


def request_head(req: Request, forwarded: bytes, strip_auth: bool) -> bytes:
    """The head the device gets: hop-by-hop and client-claimed fields dropped, the gateway's
    own Forwarded fields added, framing redone (a body is re-framed, never passed raw)."""
    tokens = req.tokens
    user_11 = req.version == "1.1"
    parts = [b"%b %b HTTP/1.1\r\n" % (req.method, req.target)]
    for lname, name, value in req.headers:
        if lname in DROP_FROM_REQUEST or lname in tokens:
            continue
        if lname == b"authorization" and strip_auth:
            continue
        if lname == b"expect" and not user_11:
            continue
        parts.append(b"%b: %b\r\n" % (name, value))
    if req.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if req.upgrade is not None:
        parts.append(b"Connection: upgrade\r\nUpgrade: %b\r\n" % req.upgrade)
    parts.append(forwarded)
    parts.append(b"\r\n")
    return b"".join(parts)
