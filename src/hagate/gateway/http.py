"""The user-facing HTTP side: read one request head, route it by Host, answer errors.

After the first head, the user's connection is a raw pipe to the device (keep-alive requests
and WebSocket upgrades pass through unchanged), bound to the device of that first Host.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from hagate.net.conn import ProtocolError

SERVICE_SEP = "--"  # <service>--<device>.<domain> picks a service other than the default


@dataclass(frozen=True, slots=True)
class Route:
    device: str
    service: str | None  # None: the device's default HTTP service


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
