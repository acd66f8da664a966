"""HTTP vocabulary of the user-facing side: Host routing, proxy header rules, error responses.

Pure functions and constants, shared by the per-request front (:mod:`hagate.gateway.http_front`)
and by the tests: no sockets here. Header names are lower-case ``bytes`` as they are compared
on the hot path; values are ``bytes`` as they came off the wire (latin-1 when decoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from hagate.net.conn import ProtocolError

SERVICE_SEP = "--"  # <service>--<device>.<domain> picks a service other than the default

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

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class Route:
    device: str
    service: str | None  # None: the device's default HTTP service


class HostError(ValueError):
    """A Host the gateway refuses: ``status`` is the HTTP answer (400 or 421)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def host_name(host: str) -> str:
    host = host.strip().lower()
    if not host.startswith("[") and ":" in host:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def route_for(host: str, domain: str) -> Route | None:
    """``dev1.gw.example.com`` -> Route("dev1", None); other domains -> None."""
    name = host_name(host)
    suffix = "." + domain
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    if not label or "." in label:
        return None
    service, sep, device = label.rpartition(SERVICE_SEP)
    if sep and service and device:
        return Route(device, service)
    return Route(label, None)


def check_host(value: bytes, listen_port: int) -> str:
    """The host name of a Host field (lower case, no port, no final dot), or HostError.

    RFC 9112 §3.2 and RFC 9110 §7.2: ``host [ ":" port ]``, no userinfo. A port other than
    the listener's would let one name mean two sites; an empty or odd name cannot be routed.
    """
    try:
        text = value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise HostError(400, "Host is not ASCII") from None
    if not text:
        raise HostError(400, "request has no Host")
    if "@" in text:
        raise HostError(400, "Host must not carry userinfo")
    name, port = text, ""
    if text.startswith("["):
        raise HostError(404, "address literals are not routed: use a device name")
    if ":" in text:
        name, _, port = text.rpartition(":")
        if not port.isdigit() or int(port) > 65535:
            raise HostError(400, f"Host port {port!r} is not a port")
        if int(port) != listen_port:
            raise HostError(400, f"Host port {port} is not this listener's port {listen_port}")
    name = name.lower().removesuffix(".")
    if not _NAME_RE.match(name):
        raise HostError(400, f"Host {text!r} is not a host name")
    return name


def connection_tokens(values: list[bytes]) -> frozenset[bytes]:
    """The lower-case option names of every Connection field (RFC 9110 §7.6.1)."""
    if not values:
        return frozenset()
    return frozenset(t.strip().lower() for v in values for t in v.split(b",") if t.strip())


def forwarded_fields(client_ip: str, proto: str) -> bytes:
    """X-Forwarded-For/-Proto and RFC 7239 Forwarded for one client connection."""
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    return (
        f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {proto}\r\n"
        f"Forwarded: for={node};proto={proto}\r\n"
    ).encode("latin-1")


def error_response(
    code: int,
    message: str,
    *,
    close: bool = True,
    challenge: str | None = None,
    head_only: bool = False,
) -> bytes:
    """A short text/plain answer made by the gateway itself (never the device's page)."""
    body = (message.replace("\r", " ").replace("\n", " ")[:500] + "\n").encode("utf-8", "replace")
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    extra = ""
    if challenge:
        extra += f"WWW-Authenticate: {challenge}\r\n"
    if close:
        extra += "Connection: close\r\n"
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        f"{extra}\r\n"
    ).encode("latin-1", "replace")
    return head if head_only else head + body


# ------------------------------------------------------------------ one-head path (legacy)
# The gateway before the per-request front read one head, then piped the connection raw.
# Kept until server.py calls HttpFront (then these two can go).


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, lower-cased headers) of a request head ending in CRLF CRLF."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise ProtocolError("undecodable head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError("not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError("malformed header line")
        key = name.lower()
        if key == "host" and key in headers:
            raise ProtocolError("more than one Host header")
        headers[key] = value.strip()
    return parts[0], parts[1], headers


def response(code: int, message: str, extra: str = "") -> bytes:
    body = (message + "\n").encode()
    reason = HTTPStatus(code).phrase
    return (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}"
        "Connection: close\r\n\r\n"
    ).encode() + body
