"""Pure pieces: gateway.toml, Host routing, request checks and heads, metrics."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import httptools
import pytest

from hagate.gateway.config import ConfigError, Endpoint, parse_gateway_config
from hagate.gateway.http import HostError, Route, check_host, route_for
from hagate.gateway.http.fields import connection_tokens, forwarded_fields
from hagate.gateway.http.request import Request, parse_refusal, refusal, request_head
from hagate.gateway.metrics import Metrics
from hagate.net.conn import parse_hostport
from hagate.net.loop import event_loop_factory

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


def test_check_host() -> None:
    assert check_host(b"DEV1.gw.example.com.", 443) == "dev1.gw.example.com"
    assert check_host(b"dev1.gw.example.com:443", 443) == "dev1.gw.example.com"
    for bad, status in (
        (b"", 400),
        (b"u@dev1.gw.example.com", 400),
        (b"dev1.gw.example.com:8443", 400),
        (b"dev1.gw.example.com:x", 400),
        (b"[::1]", 404),
        (b"dev_1.gw.example.com", 400),
        ("dév.gw".encode(), 400),
    ):
        with pytest.raises(HostError) as info:
            check_host(bad, 443)
        assert info.value.status == status, bad


def request(head: bytes) -> Request:
    """The head as the front's parser hands it over (llhttp through httptools)."""
    heads: list[Request] = []

    class Sink:
        def __init__(self) -> None:
            self.url = b""
            self.headers: list[tuple[bytes, bytes, bytes]] = []

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), name, value))

        def on_headers_complete(self) -> None:
            p = parser
            heads.append(
                Request(
                    p.get_method(),
                    self.url,
                    p.get_http_version(),
                    self.headers,
                    p.should_keep_alive(),
                    p.should_upgrade(),
                    False,
                )
            )

    parser = httptools.HttpRequestParser(Sink())
    with contextlib.suppress(httptools.HttpParserUpgrade):
        parser.feed_data(head)
    assert len(heads) == 1
    return heads[0]


def test_request_refusals_for_what_llhttp_lets_through() -> None:
    ok = request(b"GET http://dev1.gw/x HTTP/1.1\r\nHost: dev1.gw\r\n\r\n")
    assert refusal(ok) is None
    for head, status in (
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET http://dev2.gw/ HTTP/1.1\r\nHost: dev1.gw\r\n\r\n", 400),
        (b"GET ftp://dev1.gw/ HTTP/1.1\r\nHost: dev1.gw\r\n\r\n", 400),
    ):
        refused = refusal(request(head))
        assert refused is not None and refused[0] == status, head
    assert parse_refusal("431")[0] == 431
    assert parse_refusal("Invalid header value char") == (
        400,
        "bad request: Invalid header value char",
    )


def test_request_head_drops_hop_by_hop_and_claims_and_reframes() -> None:
    req = request(
        b"POST /u HTTP/1.1\r\nHost: dev1.gw\r\nConnection: keep-alive, X-Secret\r\n"
        b"X-Secret: 1\r\nX-Forwarded-For: 6.6.6.6\r\nAuthorization: Basic Zm9v\r\n"
        b"Transfer-Encoding: chunked\r\nKeep-Alive: 5\r\n\r\n"
    )
    assert req.body and req.chunked and req.authorization == b"Basic Zm9v"
    fwd = forwarded_fields("192.0.2.1", "https")
    head = request_head(req, fwd, strip_auth=True)
    assert head == (
        b"POST /u HTTP/1.1\r\nHost: dev1.gw\r\nTransfer-Encoding: chunked\r\n"
        b"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n"
        b"Forwarded: for=192.0.2.1;proto=https\r\n\r\n"
    )
    assert b"Authorization: Basic Zm9v" in request_head(req, fwd, strip_auth=False)
    assert forwarded_fields("2001:db8::1", "http").endswith(b'for="[2001:db8::1]";proto=http\r\n')
    assert connection_tokens([b"Close, X-A", b" x-b "]) == {b"close", b"x-a", b"x-b"}


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


def test_gateway_runs_on_uvloop_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("HAGATE_LOOP", raising=False)
    assert event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("HAGATE_LOOP", "asyncio")
    assert event_loop_factory() is None  # asyncio.Runner's default: asyncio's own loop
