"""Pure pieces: gateway.toml, Host routing, head parsing, metrics."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hagate.gateway.config import ConfigError, Endpoint, parse_gateway_config
from hagate.gateway.http import Route, parse_head, route_for
from hagate.gateway.metrics import Metrics
from hagate.net.conn import ProtocolError, parse_hostport

FULL = """
domain = "gw.example.com"
[tls]
ca = "pki/ca.crt"
cert = "pki/issued/server/gw/cert.pem"
key = "pki/issued/server/gw/key.pem"
crl = "/etc/hagate/crl.pem"
[listen]
tunnel = "0.0.0.0:7443"
https = "0.0.0.0:443"
http = "[::]:80"
admin = "127.0.0.1:9180"
[tcp.pinned]
"dev1/ssh" = 20022
[limits]
streams_per_device = 64
heartbeat_ms = 250
[policy]
file = "policy.toml"
[log]
access = "/var/log/hagate/access.log"
"""


def test_full_gateway_config() -> None:
    cfg = parse_gateway_config(tomllib.loads(FULL), Path("/etc/hagate"))
    assert cfg.domain == "gw.example.com"
    assert cfg.ca == Path("/etc/hagate/pki/ca.crt")
    assert cfg.crl == Path("/etc/hagate/crl.pem")
    assert cfg.https_cert == cfg.cert  # the same wildcard certificate by default
    assert cfg.http == Endpoint("::", 80) and str(cfg.http) == "[::]:80"
    assert cfg.tcp_pinned == {"dev1/ssh": 20022}
    assert cfg.policy == Path("/etc/hagate/policy.toml")
    assert cfg.access_log == Path("/var/log/hagate/access.log")
    assert (cfg.streams_per_device, cfg.heartbeat_ms, cfg.pool, cfg.pool_idle) == (64, 250, 2, 60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'domain' is required"),
        ('domain = "d"\n[tls]\nca = "a"\n', "needs ca, cert and key"),
        ('domain = "d"\nport = 1\n', "unknown keys"),
        (
            'domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[tcp]\nports = "9-2"\n',
            r"\[tcp.pinned\]",
        ),
        ('domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[listen]\nhttp = "x:y"\n', "bad port"),
        ('domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[limits]\npool = "2"\n', "expected int"),
        ('domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[limits]\npool = 99\n', "pool <= 16"),
        (
            'domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[tcp.pinned]\n"x/a" = 1\n"y/b" = 1\n',
            "pinned twice",
        ),
        ('domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[users]\nbob = "dev1"\n', "policy file"),
    ],
)
def test_gateway_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_gateway_config(tomllib.loads(text), Path("."))


def test_routes_by_host() -> None:
    d = "gw.example.com"
    assert route_for("dev1.gw.example.com", d) == Route("dev1", None)
    assert route_for("DEV1.GW.example.com.:8443", d) == Route("dev1", None)
    assert route_for("admin--dev1.gw.example.com", d) == Route("dev1", "admin")
    assert route_for("gw.example.com", d) is None
    assert route_for("a.b.gw.example.com", d) is None
    assert route_for("dev1.evil.com", d) is None
    assert route_for("xgw.example.com", d) is None


def test_parse_head() -> None:
    method, target, headers = parse_head(b"GET /a HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\n\r\n")
    assert (method, target, headers) == ("GET", "/a", {"host": "x", "x-a": "1"})
    for bad in (
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
    ):
        with pytest.raises(ProtocolError):
            parse_head(bad)


def test_parse_hostport() -> None:
    assert parse_hostport("h:1") == ("h", 1)
    assert parse_hostport("[::1]:22") == ("::1", 22)
    assert parse_hostport("h", 7443) == ("h", 7443)
    for bad in ("h", "h:x", "h:70000"):
        with pytest.raises(ValueError):
            parse_hostport(bad)


def test_metrics_text() -> None:
    m = Metrics()
    m.auth_failures["revoked"] += 2
    m.bytes[0] += 10
    text = m.render()
    assert 'hagate_auth_failures_total{reason="revoked"} 2' in text
    assert 'hagate_bytes_total{direction="to_device"} 10' in text
    assert "# TYPE hagate_agents_connected gauge" in text


def test_fair_budget_spreads_handshakes_over_loop_turns_and_addresses() -> None:
    import asyncio
    from collections import Counter

    from hagate.gateway.admission import FairBudget

    async def main() -> tuple[Counter[int], list[str]]:
        budget = FairBudget(4)
        turn = 0
        granted: list[int] = []
        order: list[str] = []

        async def ticker() -> None:
            nonlocal turn
            while True:
                turn += 1
                await asyncio.sleep(0)

        async def step(peer: str) -> None:
            await budget.for_peer(peer).acquire()
            granted.append(turn)
            order.append(peer)

        tick = asyncio.create_task(ticker())
        # A flood of 36 steps from one address queued first, then 4 from a fresh client.
        flood = [step("10.0.0.1") for _ in range(36)]
        await asyncio.gather(*flood, *(step("192.0.2.7") for _ in range(4)))
        tick.cancel()
        return Counter(granted), order

    per_turn, order = asyncio.run(main())
    assert sum(per_turn.values()) == 40
    assert max(per_turn.values()) <= 4
    assert len(per_turn) >= 10
    # Round-robin: the fresh client's four steps are all done within the first dozen.
    assert max(i for i, p in enumerate(order) if p == "192.0.2.7") < 12
