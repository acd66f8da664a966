"""Host routing: which device and service a request's Host names, and which Hosts are refused.

``<device>.<domain>`` is the device's default web UI, ``<service>--<device>.<domain>`` one of
its other HTTP services. Pure: no sockets; names are compared lower case, without the port
and the final dot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICE_SEP = "--"  # <service>--<device>.<domain> picks a service other than the default
_CACHE_MAX = 4096  # distinct Host values remembered by one listener's Routes

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class Route:
    device: str
    service: str | None  # None: the device's default HTTP service


class HostError(ValueError):
    """A Host the gateway refuses: ``status`` is the HTTP answer (400 or 404)."""

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


class Routes:
    """One listener's Host -> (name, route) answers, remembered per raw Host value: a
    keep-alive connection sends the same Host again and again, and checking it is a regex."""

    def __init__(self, listen_port: int, domain: str) -> None:
        self.listen_port = listen_port
        self.domain = domain.lower().rstrip(".")
        self._seen: dict[bytes, tuple[str, Route | None] | HostError] = {}

    def route(self, host: bytes) -> tuple[str, Route | None]:
        """(host name, route or None for another domain); HostError for a bad Host."""
        hit = self._seen.get(host)
        if hit is None:
            try:
                name = check_host(host, self.listen_port)
                hit = (name, route_for(name, self.domain))
            except HostError as exc:
                hit = exc
            if len(self._seen) >= _CACHE_MAX:
                self._seen.clear()
            self._seen[host] = hit
        if isinstance(hit, HostError):
            raise hit
        return hit
