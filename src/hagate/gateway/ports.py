"""Raw TCP ports for device services, the same on every node and across restarts.

No state is kept: a service's port is (in this order) pinned in gateway.toml, asked for in
the agent's config, or derived from a hash of ``device/service`` into the configured range.
Two services that hash to the same port conflict; the one bound first keeps it and the
other is told to pin a port (the docs say how).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
from dataclasses import dataclass, field

from hagate.net.conn import listen_socket


def route_key(device: str, service: str) -> str:
    return f"{device}/{service}"


def hashed_port(key: str, ports: range) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return ports[int.from_bytes(digest[:8], "big") % len(ports)]


@dataclass
class PortMap:
    host: str
    ports: range
    pinned: dict[str, int]
    owner: dict[int, str] = field(default_factory=dict)
    socks: dict[int, socket.socket] = field(default_factory=dict)

    def port_for(self, key: str, requested: int | None) -> int:
        """The port of a route, or ValueError with the reason it has none."""
        if key in self.pinned:
            return self.pinned[key]
        pinned_ports = set(self.pinned.values())
        if requested is not None:
            if requested not in self.ports:
                raise ValueError(
                    f"port {requested} is outside the gateway's range "
                    f"{self.ports.start}-{self.ports.stop - 1}"
                )
            port = requested
        else:
            port = hashed_port(key, self.ports)
        if port in pinned_ports:
            raise ValueError(f"port {port} is pinned to another route; pin one for {key}")
        return port

    def bind(self, key: str, port: int) -> socket.socket | None:
        """Listen on ``port`` for ``key``; None if it is already ours (still listening)."""
        holder = self.owner.get(port)
        if holder == key:
            return None
        if holder is not None:
            raise ValueError(f"port {port} is taken by {holder}; pin a port for {key}")
        try:
            sock = listen_socket(self.host, port, backlog=128)
        except OSError as exc:
            raise ValueError(f"cannot listen on {self.host}:{port}: {exc.strerror}") from None
        self.owner[port] = key
        self.socks[port] = sock
        return sock

    def release(self, port: int) -> socket.socket | None:
        self.owner.pop(port, None)
        return self.socks.pop(port, None)

    def ports_of(self, device: str) -> list[int]:
        prefix = device + "/"
        return [p for p, k in self.owner.items() if k.startswith(prefix)]

    def close_all(self) -> None:
        for sock in self.socks.values():
            with contextlib.suppress(OSError):
                sock.close()
        self.socks.clear()
        self.owner.clear()
