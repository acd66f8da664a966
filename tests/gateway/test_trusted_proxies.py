"""``[listen] trusted_proxies``: the client of each request behind a reverse proxy.

Pure tests of the walk (http/clientip.py), the config key, and the front on the fake hub of
test_http_front (socketpairs, devices that echo what they got): the policy's address rules,
the memo of allowed decisions and what the device receives in X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hagate.gateway.accesslog import AccessEntry
from hagate.gateway.config import ConfigError, load_gateway_config, parse_gateway_config
from hagate.gateway.http import HttpFront
from hagate.gateway.http.clientip import (
    MAX_HOPS,
    effective_client,
    forwarded_chain,
    forwarded_proto,
)
from hagate.gateway.http.fields import forwarded_fields
from hagate.net.backend import MemoryBackend
from hagate.net.tls import Identity
from hagate.policy.model import AuthFailure, Decision, Principal, RouteKind

from .kit import (
    Pki,
    agent_config,
    gateway_config,
    hello,
    http_service,
    running_agent,
    running_gateway,
)
from .memory_kit import (
    USER_IP,
    memory_agent,
    memory_gateway,
    memory_gateway_config,
    memory_network,
    serve,
    user,
)
from .test_http_front import DOMAIN, Device, FakeHub, FakeLease, FakePolicy, Rig, run
from .test_nginx import NGINX, XFF, running_nginx

NETS = (
    ipaddress.ip_network("10.0.0.0/24"),
    ipaddress.ip_network("::1"),
    ipaddress.ip_network("fd00::/64"),
)
PROXY = "10.0.0.5"


@pytest.fixture
def mem(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    return memory_network(monkeypatch)


# --------------------------------------------------------------------------- the walk


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert effective_client("198.51.100.7", ["6.6.6.6"], ["for=6.6.6.6"], NETS) == "198.51.100.7"
    assert effective_client("198.51.100.7", None, None, ()) == "198.51.100.7"
    assert effective_client(PROXY, ["6.6.6.6"], None, ()) == PROXY  # nothing trusted


def test_one_trusted_proxy_names_the_client() -> None:
    assert effective_client(PROXY, ["203.0.113.9"], None, NETS) == "203.0.113.9"
    assert effective_client(PROXY, [" 203.0.113.9:5123 "], None, NETS) == "203.0.113.9"
    assert effective_client(PROXY, None, None, NETS) == PROXY  # it named no one
    assert effective_client(PROXY, [], [], NETS) == PROXY


def test_chained_proxies_are_skipped_from_the_right_and_the_left_is_not_believed() -> None:
    # client-chosen junk, then the client, then two trusted proxies (one per field line)
    xff = ["1.1.1.1, 203.0.113.9", "10.0.0.7"]
    assert forwarded_chain(PROXY, xff, None, NETS) == ["203.0.113.9", "10.0.0.7", PROXY]
    assert effective_client(PROXY, xff, None, NETS) == "203.0.113.9"
    # every hop trusted: the leftmost one is the client
    assert effective_client(PROXY, ["10.0.0.8, 10.0.0.7"], None, NETS) == "10.0.0.8"


@pytest.mark.parametrize(
    "junk",
    ["unknown", "", "not-an-ip", "<script>", "203.0.113.9:x", "[::1", "[1.2.3.4]", "fe80::1%eth0"],
)
def test_garbage_stops_the_walk_at_the_last_good_hop(junk: str) -> None:
    assert effective_client(PROXY, [junk], None, NETS) == PROXY
    assert effective_client(PROXY, [f"{junk}, 10.0.0.7"], None, NETS) == "10.0.0.7"
    assert effective_client(PROXY, [f"203.0.113.9, {junk}"], None, NETS) == PROXY


def test_too_many_hops_stop_the_walk() -> None:
    hops = ["203.0.113.9"] + ["10.0.0.7"] * (MAX_HOPS + 5)
    assert effective_client(PROXY, [", ".join(hops)], None, NETS) == "10.0.0.7"
    hops = ["203.0.113.9"] + ["10.0.0.7"] * (MAX_HOPS - 1)
    assert effective_client(PROXY, [", ".join(hops)], None, NETS) == "203.0.113.9"


def test_ipv6_and_the_forwarded_field() -> None:
    assert effective_client("::1", ["2001:db8::9"], None, NETS) == "2001:db8::9"
    assert effective_client("::1", ["[2001:DB8::9]:443"], None, NETS) == "2001:db8::9"
    assert effective_client("::ffff:10.0.0.5", ["203.0.113.9"], None, NETS) == "203.0.113.9"
    fwd = ['for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"']
    assert effective_client("::1", None, fwd, NETS) == "2001:db8:cafe::17"
    chain = forwarded_chain("::1", None, ['for="[2001:db8::9]", For="[fd00::2]"'], NETS)
    assert chain == ["2001:db8::9", "fd00::2", "::1"]
    assert effective_client("::1", None, ["for=unknown"], NETS) == "::1"
    assert effective_client("::1", None, ['for="_hidden", for=fd00::3'], NETS) == "fd00::3"
    assert effective_client("::1", None, ["by=fd00::1"], NETS) == "::1"  # no for=
    # X-Forwarded-For is read when both are there (what nginx writes)
    assert effective_client(PROXY, ["203.0.113.9"], ["for=198.51.100.1"], NETS) == "203.0.113.9"


def test_forwarded_fields_keep_the_proxy_chain() -> None:
    assert forwarded_fields("203.0.113.9", "http", ("10.0.0.7", PROXY)) == (
        b"X-Forwarded-For: 203.0.113.9, 10.0.0.7, 10.0.0.5\r\nX-Forwarded-Proto: http\r\n"
        b"Forwarded: for=203.0.113.9, for=10.0.0.7, for=10.0.0.5;proto=http\r\n"
    )
    assert forwarded_fields("2001:db8::9", "https", ("::1",)).endswith(
        b'Forwarded: for="[2001:db8::9]", for="[::1]";proto=https\r\n'
    )


# --------------------------------------------------------------------------- the config

BASE = 'domain = "d"\n[tls]\nca="a"\ncert="b"\nkey="c"\n[listen]\n'


def test_config_trusted_proxies() -> None:
    assert parse_gateway_config(tomllib.loads(BASE), Path(".")).trusted_proxies == ()
    text = BASE + 'trusted_proxies = ["10.0.0.0/24", "::1"]\n'
    cfg = parse_gateway_config(tomllib.loads(text), Path("."))
    assert cfg.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/24"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["10.0.0.0/33"]', "'10.0.0.0/33'"),
        ('["nginx"]', "'nginx'"),
        ('["10.0.0.1/24"]', "host bits"),
        ('"10.0.0.0/24"', "expected a list"),
        ("[1]", "expected a list"),
    ],
)
def test_config_bad_trusted_proxies_name_file_line_and_key(
    tmp_path: Path, value: str, message: str
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + 'http = "127.0.0.1:8080"\n' + f"trusted_proxies = {value}\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_gateway_config(path)
    assert str(err.value).startswith(f"{path}:8: [listen] trusted_proxies: ")


# --------------------------------------------------------------------------- the front

INSIDE = "203.0.113.9"  # admitted to dev1 by the address rule
OUTSIDE = "198.51.100.66"


class FencedPolicy(FakePolicy):
    """FakePolicy, with dev1 open only from 203.0.113.0/24 (an IP allow-list)."""

    decided: list[str]

    def decide(
        self, principal: Principal, device: str, service: str, route: RouteKind, client_ip: str
    ) -> Decision:
        self.decided.append(client_ip)
        if device == "dev1" and ipaddress.ip_address(client_ip) not in NET_INSIDE:
            return Decision(False, "fence", 403, f"not from {client_ip}")
        return super().decide(principal, device, service, route, client_ip)


NET_INSIDE = ipaddress.ip_network("203.0.113.0/24")


class RecordingHub(FakeHub):
    """FakeHub that keeps the client address of each lease and refusal."""

    def __init__(self) -> None:
        super().__init__({n: Device(n) for n in ("dev1", "dev2", "dev3")})
        policy = FencedPolicy()
        policy.decided = []
        self._policy = policy
        self.admitted: list[str] = []
        self.refused: list[str] = []
        self.authenticated: list[str] = []
        self.vias: list[str] = []  # per admit/refusal: the via the front gave ("" for none)

    async def authenticate(
        self, policy: FakePolicy, authorization: str | None, cert: Identity | None, client_ip: str
    ) -> Principal | AuthFailure:
        self.authenticated.append(client_ip)
        return await super().authenticate(policy, authorization, cert, client_ip)

    def admit(
        self,
        device: str,
        service: str,
        route: RouteKind,
        principal: Principal,
        client_ip: str,
        rule: str,
        via: str = "",
    ) -> FakeLease:
        self.admitted.append(client_ip)
        self.vias.append(via)
        return super().admit(device, service, route, principal, client_ip, rule)

    def log_refusal(
        self,
        principal: Principal,
        client_ip: str,
        device: str,
        service: str,
        route: RouteKind,
        rule: str,
        status: int,
        reason: str,
        via: str = "",
    ) -> None:
        self.refused.append(client_ip)
        self.vias.append(via)
        super().log_refusal(principal, client_ip, device, service, route, rule, status, reason)


@contextlib.asynccontextmanager
async def proxied_rig(trusted: tuple[str, ...] = ("10.0.0.0/24", "::1")) -> AsyncIterator[Rig]:
    hub = RecordingHub()
    nets = tuple(ipaddress.ip_network(t) for t in trusted)
    front = HttpFront(hub, RouteKind.HTTP, 80, DOMAIN, trusted_proxies=nets)
    rig = Rig(front, hub)
    try:
        yield rig
    finally:
        front.close()
        for t in rig.serving:
            t.cancel()
        hub.stop()


def hub_of(g: Rig) -> RecordingHub:
    assert isinstance(g.hub, RecordingHub)
    return g.hub


def test_untrusted_peer_with_spoofed_fields_is_judged_by_its_own_address() -> None:
    async def main() -> None:
        async with proxied_rig() as g:
            c = await g.client(ip=OUTSIDE)
            spoof = f"X-Forwarded-For: {INSIDE}\r\nForwarded: for={INSIDE}\r\n"
            assert (await c.get("dev1.gw.test", extra=spoof)).status == 403
            resp = await c.get("dev2.gw.test", extra=spoof)
            assert resp.status == 401  # dev2 needs credentials: the anonymous path
            assert hub_of(g).refused == [OUTSIDE, OUTSIDE]
            assert hub_of(g).authenticated == [OUTSIDE, OUTSIDE]
            assert hub_of(g).vias == ["", ""]
            resp = await c.get(
                "dev2.gw.test", extra=spoof + "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
            )
            assert resp.json()["headers"]["x-forwarded-for"] == [OUTSIDE]
            assert resp.json()["headers"]["forwarded"] == [f"for={OUTSIDE};proto=http"]

    run(main)


def test_two_clients_on_one_keep_alive_connection_of_a_trusted_proxy() -> None:
    async def main() -> None:
        async with proxied_rig() as g:
            hub = hub_of(g)
            c = await g.client(ip=PROXY)
            seen = []
            for client in (INSIDE, OUTSIDE, INSIDE, INSIDE, OUTSIDE, INSIDE):
                resp = await c.get("dev1.gw.test", extra=f"X-Forwarded-For: {client}\r\n")
                seen.append(resp.status)
                if resp.status == 200:
                    xff = resp.json()["headers"]["x-forwarded-for"]
                    assert xff == [f"{client}, {PROXY}"]
                    fwd = resp.json()["headers"]["forwarded"]
                    assert fwd == [f"for={client}, for={PROXY};proto=http"]
            assert seen == [200, 403, 200, 200, 403, 200]
            assert hub.admitted == [INSIDE] * 4
            assert hub.refused == [OUTSIDE] * 2
            assert hub.vias == [PROXY] * 6
            assert g.dev("dev1").connections == 1  # one upstream served every allowed one
            # The memo served the second INSIDE in a row; every change of client decided anew.
            assert hub._policy.decided == [INSIDE, OUTSIDE, INSIDE, OUTSIDE, INSIDE]  # type: ignore[attr-defined]

    run(main)


def test_chain_garbage_and_ipv6_through_the_front() -> None:
    async def main() -> None:
        async with proxied_rig() as g:
            hub = hub_of(g)
            c = await g.client(ip=PROXY)
            xff = f"X-Forwarded-For: 6.6.6.6, {INSIDE}\r\nX-Forwarded-For: 10.0.0.7\r\n"
            resp = await c.get("dev1.gw.test", extra=xff)
            assert resp.status == 200
            assert resp.json()["headers"]["x-forwarded-for"] == [f"{INSIDE}, 10.0.0.7, {PROXY}"]
            # garbage after the client: the walk stops at the proxy, who is not let in
            resp = await c.get("dev1.gw.test", extra=f"X-Forwarded-For: {INSIDE}, bogus\r\n")
            assert resp.status == 403
            resp = await c.get("dev2.gw.test", extra="X-Forwarded-For: <script>\r\n")
            assert resp.status == 401
            assert hub.refused == [PROXY, PROXY]
            c6 = await g.client(ip="::1")
            fwd = 'Forwarded: for="[2001:db8::9]:4711";proto=https\r\n'
            resp = await c6.get("dev2.gw.test", extra=fwd + "Authorization: Basic d3Jvbmc=\r\n")
            assert resp.status == 401
            assert hub.authenticated[-1] == "2001:db8::9"  # the rate limit's address
            resp = await c6.get("dev3.gw.test", extra="X-Forwarded-For: 2001:db8::9\r\n")
            assert resp.status == 403 and hub.refused[-1] == "2001:db8::9"
            # no field at all: the proxy itself is the client
            c7 = await g.client(ip="10.0.0.9")
            resp = await c7.get("dev2.gw.test", extra="Authorization: Basic YWxpY2U6c2VjcmV0\r\n")
            assert resp.status == 200
            assert resp.json()["headers"]["x-forwarded-for"] == ["10.0.0.9"]
            assert hub.admitted[-1] == "10.0.0.9"
            assert hub.vias == [PROXY, "", "", "::1", "::1", ""]  # garbage: the peer itself

    run(main)


def test_no_trusted_proxies_is_todays_behaviour() -> None:
    async def main() -> None:
        async with proxied_rig(trusted=()) as g:
            c = await g.client(ip=PROXY)
            resp = await c.get("dev2.gw.test", extra=f"X-Forwarded-For: {INSIDE}\r\n")
            assert resp.status == 401 and hub_of(g).refused == [PROXY]
            resp = await c.get(
                "dev2.gw.test",
                extra=f"X-Forwarded-For: {INSIDE}\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n",
            )
            assert resp.json()["headers"]["x-forwarded-for"] == [PROXY]
            assert hub_of(g).vias == ["", ""]

    run(main)


# --------------------------------------------------------------------------- a real gateway

FENCED_POLICY = """
[[rule]]
name = "inside-only"
devices = ["dev1"]
services = ["*"]
routes = ["http"]
public = true
from = ["203.0.113.0/24"]
"""


def test_real_gateway_policy_and_access_log_behind_a_trusted_proxy(
    pki: Pki, mem: MemoryBackend
) -> None:
    """The node's own policy (address rule), its access log (client and via) and its
    per-client rates, behind a proxy at the users' address (the memory network's)."""

    async def main() -> None:
        service = await serve(mem, 8080, hello("dev1"))
        proxy = ipaddress.ip_network(USER_IP)
        cfg = memory_gateway_config(pki, FENCED_POLICY, trusted_proxies=(proxy,))
        async with memory_gateway(cfg, mem) as gw:
            acfg = agent_config(pki, "dev1", gw.addresses["tunnel"][1], http=8080)
            async with memory_agent(acfg, mem):
                r, w = await user(mem, "127.0.0.1", gw.addresses["http"][1])
                try:
                    statuses = []
                    for client in (INSIDE, OUTSIDE, INSIDE):
                        w.write(
                            f"GET /{client} HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\n"
                            f"X-Forwarded-For: {client}\r\n\r\n".encode()
                        )
                        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                        size = next(
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        )
                        await r.readexactly(size)
                        statuses.append(int(head.split(b" ")[1]))
                    assert statuses == [200, 403, 200]
                finally:
                    w.close()
                for _ in range(100):
                    if sum(e.device == "dev1" for e in gw.access.recent) >= 3:
                        break
                    await asyncio.sleep(0.02)
                got = [
                    (e.client, e.via, e.result.split(":")[0])
                    for e in gw.access.recent
                    if e.device == "dev1"
                ]
                assert sorted(got) == sorted(
                    [(INSIDE, USER_IP, "ok"), (INSIDE, USER_IP, "ok"), (OUTSIDE, USER_IP, "denied")]
                )
                entry = next(e for e in gw.access.recent if e.client == OUTSIDE)
                assert json.loads(entry.json())["via"] == USER_IP
                assert f"@{OUTSIDE} via {USER_IP} -> dev1/" in entry.text()
        service.close()

    asyncio.run(asyncio.wait_for(main(), 15))


def test_access_entry_without_a_proxy_is_unchanged() -> None:
    entry = AccessEntry(0.0, "n", "anonymous", "192.0.2.7", "dev1", "http", "http", "ok", "r")
    assert "via" not in json.loads(entry.json())
    assert "@192.0.2.7 -> dev1/http" in entry.text()


# --------------------------------------------------------------------------- real nginx

LOOPBACK_POLICY = """
[[rule]]
name = "from-127.0.0.2"
devices = ["dev1"]
services = ["*"]
routes = ["http"]
public = true
from = ["127.0.0.2/32"]
"""


@pytest.mark.skipif(NGINX is None, reason="needs Debian's nginx (apt-get install nginx-light)")
def test_nginx_in_front_with_users_on_two_loopback_addresses(pki: Pki, tmp_path: Path) -> None:
    """nginx (trusted, 127.0.0.1) carries users from 127.0.0.2 (let in by the policy) and
    127.0.0.3 (not, even when it claims 127.0.0.2) over one upstream keep-alive connection."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        cfg = gateway_config(
            pki, LOOPBACK_POLICY, trusted_proxies=(ipaddress.ip_network("127.0.0.1"),)
        )
        async with running_gateway(cfg) as gw:
            tport = gw.addresses["tunnel"][1]
            async with running_agent(agent_config(pki, "dev1", tport, http=web_port)):
                gateway = gw.addresses["http"][1]
                async with running_nginx(tmp_path, gateway, XFF) as port:
                    got = []
                    for source, spoof in (
                        ("127.0.0.2", ""),
                        ("127.0.0.3", ""),
                        ("127.0.0.3", "X-Forwarded-For: 127.0.0.2\r\n"),
                        ("127.0.0.2", ""),
                    ):
                        r, w = await asyncio.open_connection(
                            "127.0.0.1", port, local_addr=(source, 0)
                        )
                        w.write(
                            f"GET / HTTP/1.1\r\nHost: dev1.{DOMAIN}\r\n{spoof}"
                            "Connection: close\r\n\r\n".encode()
                        )
                        reply = await asyncio.wait_for(r.read(), 5)
                        w.close()
                        got.append(int(reply.split(b" ")[1]))
                    assert got == [200, 403, 403, 200]
                for _ in range(100):
                    if len([e for e in gw.access.recent if e.device == "dev1"]) >= 4:
                        break
                    await asyncio.sleep(0.02)
                seen = [(e.client, e.via) for e in gw.access.recent if e.device == "dev1"]
                assert sorted(seen) == sorted(
                    [("127.0.0.2", "127.0.0.1")] * 2 + [("127.0.0.3", "127.0.0.1")] * 2
                )
        web.close()

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize(
    ("xfp", "forwarded", "expected"),
    [
        (["https"], None, "https"),
        (["HTTP"], None, "http"),
        (["http, https"], None, "https"),  # the last entry: the nearest proxy's
        (["https", "javascript"], None, None),
        (["gopher"], None, None),
        ([""], None, None),
        (None, ["for=1.2.3.4;proto=https"], "https"),
        (None, ['for=1.2.3.4;proto="https", for=10.0.0.7'], None),  # the last names none
        (None, ["for=1.2.3.4"], None),
        (None, None, None),
    ],
)
def test_forwarded_proto_believes_only_the_nearest_plain_scheme(
    xfp: list[str] | None, forwarded: list[str] | None, expected: str | None
) -> None:
    assert forwarded_proto(xfp, forwarded) == expected


def test_a_trusted_tls_proxy_names_the_scheme_an_untrusted_peer_cannot() -> None:
    async def main() -> None:
        async with proxied_rig() as g:
            auth = "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
            c = await g.client(ip=PROXY)
            extra = f"X-Forwarded-For: {INSIDE}\r\nX-Forwarded-Proto: https\r\n"
            headers = (await c.get("dev2.gw.test", extra=extra + auth)).json()["headers"]
            assert headers["x-forwarded-proto"] == ["https"]
            assert headers["forwarded"] == [f"for={INSIDE}, for={PROXY};proto=https"]
            # the next user on the same connection came over plain http
            extra = f"X-Forwarded-For: {OUTSIDE}\r\nX-Forwarded-Proto: http\r\n"
            headers = (await c.get("dev2.gw.test", extra=extra + auth)).json()["headers"]
            assert headers["x-forwarded-proto"] == ["http"]
            # garbage: the listener's own scheme
            extra = f"X-Forwarded-For: {OUTSIDE}\r\nX-Forwarded-Proto: evil\r\n"
            headers = (await c.get("dev2.gw.test", extra=extra + auth)).json()["headers"]
            assert headers["x-forwarded-proto"] == ["http"]
            untrusted = await g.client(ip=OUTSIDE)
            extra = "X-Forwarded-Proto: https\r\n"
            headers = (await untrusted.get("dev2.gw.test", extra=extra + auth)).json()["headers"]
            assert headers["x-forwarded-proto"] == ["http"]

    run(main)
