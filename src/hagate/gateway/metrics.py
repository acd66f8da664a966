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

    def render(self) -> str:
        lines: list[str] = []

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
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.stream_failures.items())],
        )
        metric(
            "bytes_total",
            "counter",
            "Bytes forwarded, by direction.",
            [
                ('{direction="to_device"}', self.bytes[0]),
                ('{direction="from_device"}', self.bytes[1]),
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
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.auth_failures.items())],
        )
        metric(
            "http_responses_total",
            "counter",
            "Responses the gateway itself sent.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.http_responses.items())],
        )
        return "\n".join(lines) + "\n"
