"""Gateway counters and their Prometheus text exposition."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Metrics:
    agents_connected: int = 0
    streams_open: int = 0
    streams_total: int = 0
    stream_failures: Counter[str] = field(default_factory=Counter)
    # [0] user -> device, [1] device -> user; the pipes add to this list directly.
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    sessions_total: int = 0
    reconnects_total: int = 0
    superseded_total: int = 0
    auth_failures: Counter[str] = field(default_factory=Counter)
    http_responses: Counter[int] = field(default_factory=Counter)
    # (device, result): result is allowed, denied or cut (revoked / no longer allowed)
    access: Counter[tuple[str, str]] = field(default_factory=Counter)
    handshakes_evicted: int = 0
    # TLS handshakes completed on the tunnel port: [0] full, [1] resumed (a session ticket);
    # the tunnel front adds to this list directly
    tunnel_handshakes: list[int] = field(default_factory=lambda: [0, 0])
    handshakes_parked: int = 0  # connections held until a handshake slot freed (a storm)
    handshakes_refused: int = 0  # closed at once: their address's handshakes all stalled
    # warm standby connections parked now, and promoted to sessions so far (the tunnel
    # front keeps both up to date)
    tunnel_standby: int = 0
    tunnel_standby_promoted: int = 0

    def render(self, live_bytes: tuple[int, int] | None = None) -> str:
        """Prometheus text; ``live_bytes`` counts streams still running too."""
        lines: list[str] = []
        up, down = live_bytes or (self.bytes[0], self.bytes[1])

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP hagate_{name} {help_}")
            lines.append(f"# TYPE hagate_{name} {kind}")
            for labels, value in samples:
                lines.append(f"hagate_{name}{labels} {value}")

        metric(
            "agents_connected",
            "gauge",
            "Device agents with a live session.",
            [("", self.agents_connected)],
        )
        metric(
            "streams_open", "gauge", "User streams being forwarded now.", [("", self.streams_open)]
        )
        metric("streams_total", "counter", "User streams opened.", [("", self.streams_total)])
        metric(
            "stream_failures_total",
            "counter",
            "User streams that could not be opened.",
            [(f'{{reason="{label(r)}"}}', n) for r, n in sorted(self.stream_failures.items())],
        )
        metric(
            "bytes_total",
            "counter",
            "Bytes forwarded, by direction.",
            [
                ('{direction="to_device"}', up),
                ('{direction="from_device"}', down),
            ],
        )
        metric("sessions_total", "counter", "Agent sessions accepted.", [("", self.sessions_total)])
        metric(
            "reconnects_total",
            "counter",
            "Agent sessions that were reconnections.",
            [("", self.reconnects_total)],
        )
        metric(
            "sessions_superseded_total",
            "counter",
            "Sessions replaced by a newer session of the same device.",
            [("", self.superseded_total)],
        )
        metric(
            "auth_failures_total",
            "counter",
            "Refused TLS clients, by reason.",
            [(f'{{reason="{label(r)}"}}', n) for r, n in sorted(self.auth_failures.items())],
        )
        metric(
            "http_responses_total",
            "counter",
            "Responses the gateway itself sent.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.http_responses.items())],
        )
        metric(
            "access_total",
            "counter",
            "User streams by device and result (allowed, denied, cut).",
            [
                (f'{{device="{label(d)}",result="{label(r)}"}}', n)
                for (d, r), n in sorted(self.access.items())
            ],
        )
        metric(
            "handshakes_evicted_total",
            "counter",
            "Incomplete TLS handshakes closed to admit newer ones (a flood, or a slow client).",
            [("", self.handshakes_evicted)],
        )
        full, resumed = self.tunnel_handshakes
        metric(
            "tunnel_handshakes_total",
            "counter",
            "TLS handshakes completed on the tunnel port, full or resumed from a ticket.",
            [('{kind="full"}', full), ('{kind="resumed"}', resumed)],
        )
        metric(
            "handshakes_parked_total",
            "counter",
            "Connections held, not reset, until a handshake slot freed (a reconnection storm).",
            [("", self.handshakes_parked)],
        )
        metric(
            "handshakes_refused_total",
            "counter",
            "Connections closed at once: their address was at its cap, its handshakes stalled.",
            [("", self.handshakes_refused)],
        )
        metric(
            "tunnel_standby",
            "gauge",
            "Warm standby connections parked here (authenticated, not routable).",
            [("", self.tunnel_standby)],
        )
        metric(
            "tunnel_standby_promoted_total",
            "counter",
            "Standby connections promoted to sessions (this node took the address they dialled).",
            [("", self.tunnel_standby_promoted)],
        )
        return "\n".join(lines) + "\n"


def label(value: str) -> str:
    """A Prometheus label value, escaped (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
