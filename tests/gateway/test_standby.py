"""Warm standby connections: parked at the other node, never routable, promoted when that
node takes the address the agent's session dialled, with no TCP or TLS handshake.

Two real gateways on loopback play the two nodes. Both listen on 127.0.0.1 (ports A and B)
with the same ``[tunnel] standby_endpoints``; the agent's "VIP" is 127.0.0.1:A. Which node
holds the dialled address is what each front's ``holds_address`` says (the real one binds,
and 127.0.0.1 is always local): the test moves the "VIP" by flipping it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from pathlib import Path

from hagate.agent.config import StandbyConfig
from hagate.gateway.config import Endpoint, GatewayConfig
from hagate.gateway.server import Gateway
from hagate.net.tls import client_context
from hagate.tunnel import wire

from .kit import (
    DOMAIN,
    Pki,
    agent_config,
    client_config,
    free_port,
    gateway_config,
    http_get,
    http_service,
    running_agent,
    running_gateway,
)

FAST = StandbyConfig(patience=3.0, first=0.05, after_promotion=0.1, max_delay=0.5)


async def _until(cond: object, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


def _pair(pki: Pki) -> tuple[GatewayConfig, GatewayConfig]:
    a, b = free_port(), free_port()
    endpoints = (Endpoint("127.0.0.1", a), Endpoint("127.0.0.1", b))
    cfg_a = gateway_config(
        pki, tunnel=Endpoint("127.0.0.1", a), http=Endpoint("127.0.0.1", free_port()),
        standby_endpoints=endpoints, node="node-a",
    )  # fmt: skip
    cfg_b = replace(
        cfg_a, tunnel=Endpoint("127.0.0.1", b), http=Endpoint("127.0.0.1", free_port()),
        node="node-b",
    )  # fmt: skip
    return cfg_a, cfg_b


def _handshakes(gw: Gateway) -> int:
    return sum(gw.metrics.tunnel_handshakes)


def test_a_standby_is_parked_unroutable_then_promoted_without_a_handshake(pki: Pki) -> None:
    async def main() -> None:
        web, web_port = await http_service("dev1")
        cfg_a, cfg_b = _pair(pki)
        acfg = replace(agent_config(pki, "dev1", cfg_a.tunnel.port, http=web_port), standby=FAST)
        async with running_gateway(cfg_b) as gw_b:
            vip_at_b = False
            gw_b.tunnel.holds_address = lambda _a: vip_at_b
            agent_ctx = running_agent(acfg, wait=False)
            agent = await agent_ctx.__aenter__()
            async with running_gateway(cfg_a) as gw_a:
                await asyncio.wait_for(agent.connected.wait(), 5)
                await _until(lambda: gw_b.metrics.tunnel_standby == 1, 5, "standby parked at B")
                # A listed only B (its own endpoint left out); B holds a standby, no session.
                assert "dev1" in gw_a.sessions and "dev1" not in gw_b.sessions
                assert gw_a.metrics.tunnel_standby == 0
                assert gw_b.health()["agents"] == 0
                assert "hagate_tunnel_standby 1" in gw_b.render_metrics()
                # Not routable at B: its users cannot reach the device through the standby.
                status, _ = await http_get(cfg_b.http.port, f"dev1.{DOMAIN}", "/")
                assert status != 200
                assert (await http_get(cfg_a.http.port, f"dev1.{DOMAIN}", "/x"))[0] == 200
                await asyncio.sleep(0.3)  # parked: no heartbeats on it, nothing happens
                assert "dev1" not in gw_b.sessions and gw_b.metrics.tunnel_standby == 1
                handshakes = _handshakes(gw_b)
            # node A dies (its gateway stops: the agent's session ends), B takes the "VIP"
            t0 = time.monotonic()
            vip_at_b = True
            await _until(lambda: "dev1" in gw_b.sessions, 3, "promoted at B")
            await _until(lambda: agent.connected.is_set(), 3, "agent in session")
            took = time.monotonic() - t0
            assert took < 1.0, took
            assert _handshakes(gw_b) == handshakes  # no TCP/TLS handshake in the failover
            assert gw_b.metrics.tunnel_standby == 0
            assert gw_b.metrics.tunnel_standby_promoted == 1
            assert agent.promoted == 1
            status, body = await http_get(cfg_b.http.port, f"dev1.{DOMAIN}", "/after")
            assert (status, body) == (200, b"hello from dev1 /after")
            # The promoted session is stale at B once B loses the "VIP" (it dialled that).
            assert gw_b.sessions["dev1"].local == "127.0.0.1"
            await agent_ctx.__aexit__(None, None, None)
        web.close()

    asyncio.run(main())


def test_a_preempting_node_promotes_and_the_agent_leaves_the_old_one(pki: Pki) -> None:
    """Both nodes alive (the seed's preemption): B takes the VIP, promotes; the agent drops
    its session at A, then parks a new standby at A (the node it left)."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        cfg_a, cfg_b = _pair(pki)
        acfg = replace(agent_config(pki, "dev1", cfg_a.tunnel.port, http=web_port), standby=FAST)
        async with running_gateway(cfg_a) as gw_a, running_gateway(cfg_b) as gw_b:
            vip_at_b = False
            gw_b.tunnel.holds_address = lambda _a: vip_at_b
            gw_a.tunnel.holds_address = lambda _a: not vip_at_b
            async with running_agent(acfg) as agent:
                await _until(lambda: gw_b.metrics.tunnel_standby == 1, 5, "standby at B")
                vip_at_b = True
                await _until(lambda: "dev1" in gw_b.sessions, 3, "promoted at B")
                await _until(lambda: "dev1" not in gw_a.sessions, 3, "old session gone at A")
                await _until(lambda: gw_a.metrics.tunnel_standby == 1, 5, "standby back at A")
                assert "dev1" not in gw_a.sessions and agent.connected.is_set()
                # and back: A takes the VIP again and promotes its standby
                vip_at_b = False
                await _until(lambda: "dev1" in gw_a.sessions, 3, "promoted at A")
                await _until(lambda: "dev1" not in gw_b.sessions, 3, "old session gone at B")
                assert agent.promoted == 2 and agent.superseded == 0
                status, _ = await http_get(cfg_a.http.port, f"dev1.{DOMAIN}", "/")
                assert status == 200
        web.close()

    asyncio.run(main())


def test_without_endpoints_nothing_changes(pki: Pki) -> None:
    """Feature off (the default): no endpoints in the welcome, a standby line is refused."""

    async def main() -> None:
        web, web_port = await http_service("dev1")
        cfg = gateway_config(pki, tunnel=Endpoint("127.0.0.1", free_port()))
        acfg = replace(agent_config(pki, "dev1", cfg.tunnel.port, http=web_port), standby=FAST)
        async with running_gateway(cfg) as gw, running_agent(acfg) as agent:
            await asyncio.sleep(0.3)
            assert not agent._standby_tasks and gw.metrics.tunnel_standby == 0
            line = await _raw_standby(pki, "device", "dev1", cfg.tunnel.port)
            assert isinstance(line, wire.Refused) and line.code == "forbidden"
        web.close()

    asyncio.run(main())


def test_a_standby_needs_a_device_certificate_and_an_ip(pki: Pki) -> None:
    async def main() -> None:
        cfg_a, _cfg_b = _pair(pki)
        async with running_gateway(cfg_a) as gw:
            port = cfg_a.tunnel.port
            line = await _raw_standby(pki, "user", "alice", port)
            assert isinstance(line, wire.Refused) and line.code == "wrong_role"
            line = await _raw_standby(pki, "device", "dev1", port, address="vip.example")
            assert isinstance(line, wire.Refused) and line.code == "protocol"
            assert gw.metrics.tunnel_standby == 0 and not gw.sessions

    asyncio.run(main())


def test_the_newest_standby_of_a_device_wins_and_a_ban_stops_its_promotion(pki: Pki) -> None:
    async def main() -> None:
        cfg_a, _cfg_b = _pair(pki)
        async with running_gateway(cfg_a) as gw:
            vip = False
            gw.tunnel.holds_address = lambda _a: vip
            port = cfg_a.tunnel.port
            first = await _open_standby(pki, "dev1", port)
            second = await _open_standby(pki, "dev1", port)
            assert gw.metrics.tunnel_standby == 1
            old = await asyncio.wait_for(first[0].readline(), 5)
            assert isinstance(wire.decode(old), wire.Superseded)
            gw.tunnel.bans.ban("dev1", 30.0, "test", asyncio.get_running_loop().time())
            vip = True
            refusal = await asyncio.wait_for(second[0].readline(), 5)
            msg = wire.decode(refusal)
            assert isinstance(msg, wire.Refused) and msg.code == "banned", msg
            assert "dev1" not in gw.sessions
            for _r, w in (first, second):
                w.close()

    asyncio.run(main())


def test_an_address_held_all_along_promotes_nothing_until_it_appears(pki: Pki) -> None:
    """A node that merely has the address (its VRRP daemon was killed and left the VIP on
    the interface) is not the master: only an address that appears promotes."""

    async def main() -> None:
        cfg_a, _cfg_b = _pair(pki)
        async with running_gateway(cfg_a) as gw:
            held = True
            gw.tunnel.holds_address = lambda _a: held
            reader, writer = await _open_standby(pki, "dev1", cfg_a.tunnel.port)
            await asyncio.sleep(0.3)
            assert "dev1" not in gw.sessions and gw.metrics.tunnel_standby == 1
            held = False  # the VRRP daemon starts: removes the stale VIP ...
            await asyncio.sleep(0.15)
            held = True  # ... and adds it as the master
            line = await asyncio.wait_for(reader.readline(), 5)
            assert isinstance(wire.decode(line), wire.Welcome)
            assert "dev1" in gw.sessions and gw.metrics.tunnel_standby_promoted == 1
            writer.close()

    asyncio.run(main())


def test_a_revoked_device_loses_its_standby(pki: Pki) -> None:
    async def main() -> None:
        cfg_a, _cfg_b = _pair(pki)
        async with running_gateway(cfg_a) as gw:
            gw.tunnel.holds_address = lambda _a: False
            reader, writer = await _open_standby(pki, "dev2", cfg_a.tunnel.port)
            serial = next(iter(gw.tunnel._standby.values())).ident.serial
            gw.revoked = frozenset({serial})  # what the CRL reload does (revocation.py)
            msg = wire.decode(await asyncio.wait_for(reader.readline(), 5))
            assert isinstance(msg, wire.Refused) and msg.code == "revoked"
            await _until(lambda: gw.metrics.tunnel_standby == 0, 2, "standby dropped")
            writer.close()

    asyncio.run(main())


def _ctx(pki: Pki, role: str, name: str, port: int) -> ssl.SSLContext:
    c = client_config(pki, role, name, port)
    return client_context(c.cert, c.key, c.ca)


async def _open_standby(
    pki: Pki, device: str, port: int, address: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_ctx(pki, "device", device, port), server_hostname="localhost"
    )
    w.write(wire.encode(wire.Standby(address, ())))
    line = await asyncio.wait_for(r.readline(), 5)
    assert isinstance(wire.decode(line), wire.StandingBy), line
    return r, w


async def _raw_standby(
    pki: Pki, role: str, name: str, port: int, address: str = "127.0.0.1"
) -> wire.Message:
    r, w = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_ctx(pki, role, name, port), server_hostname="localhost"
    )
    try:
        w.write(wire.encode(wire.Standby(address, ())))
        return wire.decode(await asyncio.wait_for(r.readline(), 5))
    finally:
        w.close()


def test_the_key_parses_and_bad_values_are_named(tmp_path: Path) -> None:
    import tomllib

    import pytest

    from hagate.gateway.config import ConfigError, parse_gateway_config
    from hagate.lab.demo.configs import gateway_toml, standby_endpoints

    text = gateway_toml(tmp_path, 300, None, standby_endpoints())
    cfg = parse_gateway_config(tomllib.loads(text), tmp_path)
    assert [str(e) for e in cfg.standby_endpoints] == ["10.1.1.5:7443", "10.1.1.10:7443"]
    off = parse_gateway_config(tomllib.loads(gateway_toml(tmp_path, 300)), tmp_path)
    assert off.standby_endpoints == ()  # the default: no standby connections
    for bad, why in [
        ('standby_endpoints = "10.0.0.1:7443"', "a list"),
        ('standby_endpoints = ["gw1.example:7443"]', "own IP address"),
        ('standby_endpoints = ["10.0.0.1"]', "standby_endpoints"),
        ('standby_nodes = ["10.0.0.1:7443"]', "unknown keys"),
    ]:
        with pytest.raises(ConfigError, match=why):
            plain = gateway_toml(tmp_path, 300)
            parse_gateway_config(tomllib.loads(f"{plain}\n[tunnel]\n{bad}\n"), tmp_path)


def test_agent_standby_keys(tmp_path: Path) -> None:
    import pytest

    from hagate.agent.config import parse_agent
    from hagate.gateway.config import ConfigError

    base = {
        "gateway": "10.1.1.100:7443",
        "tls": {"ca": "ca.crt", "cert": "c.pem", "key": "k.pem"},
        "service": [{"name": "web", "type": "http", "target": "127.0.0.1:80"}],
    }
    assert parse_agent(base, tmp_path).standby == StandbyConfig()
    cfg = parse_agent({**base, "standby": {"enabled": False, "patience_ms": 2500}}, tmp_path)
    assert not cfg.standby.enabled and cfg.standby.patience == 2.5
    for bad in ({"patience_ms": -1}, {"enabled": "yes"}, {"wait": 1}):
        with pytest.raises(ConfigError, match="standby"):
            parse_agent({**base, "standby": bad}, tmp_path)


def test_a_parked_certificate_that_expired_is_not_promoted() -> None:
    from hagate.gateway.tunnel_front import _expired

    cert = {"notAfter": "Jan  1 00:00:00 2030 GMT"}
    assert not _expired(cert, 1_800_000_000.0)  # 2027
    assert _expired(cert, 1_900_000_000.0)  # 2030
    assert _expired({"notAfter": "garbage"}, 0.0)
    assert not _expired(None, 0.0)
