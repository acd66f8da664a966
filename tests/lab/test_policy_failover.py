"""The seed's two-node cluster with an access policy: after node-1 is SIGKILLed, node-2 allows
and refuses exactly the same users (issue 10).

Both gateways run from the same gateway.toml, policy.toml and CA certificate and share no
state: bob's argon2 hash and carol's token (signed by the CA key, verified with the CA
certificate) are checked afresh by node-2's own process. Each answer is traced to the node
that gave it: by that node's own access log lines (the ``hagate.access`` logger, which goes
to the node's gateway.log), and after the crash by node-1 having no process left at all.

test_anonymous_401_challenges is a hole this test ran into, on loopback in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import secrets
import socket
import time
from base64 import b64encode
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hagate.lab import LabError
from hagate.lab.demo.cluster import WEB_BODY, DemoCluster, tail_of
from hagate.lab.demo.configs import ClusterPlan, VrrpImpl
from hagate.lab.demo.topology import (
    DEVICE,
    DEVICE_NAME,
    GATEWAYS,
    HTTP_PORT,
    NODE1,
    NODE2,
    USER,
    VIP,
    NodeSpec,
    device_host,
)
from hagate.pki.ca import load_ca
from hagate.policy.passwords import hash_password
from hagate.policy.tokens import issue_token

BOB_PASSWORD = "correct horse battery staple"
MALLORY_PASSWORD = "mallory's own valid password"
RULE = "dev1-web-ops"


def policy_text(pki: Path) -> str:
    """bob (password) and carol (token) may use dev1's web UI over http; mallory has a valid
    password and no rule; nothing is public."""
    return (
        'realm = "hagate"\n\n'
        "[tokens]\n"
        f'ca = "{pki / "ca.crt"}"\n\n'
        "[passwords]\n"
        f'bob = "{hash_password(BOB_PASSWORD)}"\n'
        f'mallory = "{hash_password(MALLORY_PASSWORD)}"\n\n'
        "[[rule]]\n"
        f'name = "{RULE}"\n'
        'who = ["password:bob", "token:carol"]\n'
        f'devices = ["{DEVICE_NAME}"]\n'
        'services = ["web"]\n'
        'routes = ["http"]\n'
    )


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class Case:
    """One user's request and the answer it must get on whichever node is master."""

    name: str
    authorization: str | None
    status: int
    identity: str  # as the access log names it
    # False: the access log may leave it out (today's server does not log a refusal for
    # wrong credentials, see the report of issue 10); when logged it must match.
    must_log: bool = True


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    challenge: str  # WWW-Authenticate ("" when absent)
    body: bytes


def request(cluster: DemoCluster, authorization: str | None, timeout: float = 3.0) -> Answer:
    """One GET / from the user node through the VIP to dev1's web UI."""
    headers = f"Host: {device_host()}\r\nConnection: close\r\n"
    if authorization is not None:
        headers += f"Authorization: {authorization}\r\n"
    deadline = time.monotonic() + timeout
    chunks = []
    with cluster.node(USER).socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((VIP, HTTP_PORT))
        sock.sendall(f"GET / HTTP/1.1\r\n{headers}\r\n".encode())
        while data := sock.recv(65536):
            chunks.append(data)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"no HTTP response: {head[:80]!r}")
    challenge = next(
        (v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
         if k.lower() == "www-authenticate"),
        "",
    )  # fmt: skip
    return Answer(int(parts[1]), challenge, body)


def access_lines(cluster: DemoCluster, spec: NodeSpec) -> list[dict[str, object]]:
    """The access log entries of ``spec``'s gateway (its own access.log, not shared)."""
    entries = []
    try:
        text = cluster.access_log_path(spec).read_text(errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("device") == DEVICE_NAME:
                entries.append(entry)
    return entries


def outcome(entry: dict[str, object]) -> tuple[str, str, str]:
    """(identity, result, rule) of one access log entry; a refusal's result is its status."""
    result = str(entry["result"])
    verdict = result if result == "ok" else str(entry["status"])
    return str(entry["identity"]), verdict, str(entry["rule"])


Answers = tuple[dict[str, tuple[int, str]], list[tuple[str, str, str]]]


def answers(cluster: DemoCluster, cases: list[Case], spec: NodeSpec) -> Answers:
    """Every case once: the answers (status, WWW-Authenticate) by case, and what ``spec``'s
    access log says of them (checked to be one line per case, with the expected status)."""
    before = len(access_lines(cluster, spec))
    got: dict[str, tuple[int, str]] = {}
    for case in cases:
        answer = request(cluster, case.authorization)
        if answer.status == 200:
            assert answer.body == WEB_BODY.encode(), (case.name, answer.body[:200])
        else:
            # a refusal never shows the device's page
            assert b"hello from" not in answer.body, (case.name, answer.body[:200])
        got[case.name] = (answer.status, answer.challenge)

    # Each answer is logged (an allowed stream when it ends), all of them by ``spec``.
    def key(c: Case) -> tuple[str, str]:
        return c.identity, "ok" if c.status == 200 else str(c.status)

    must = sorted(key(c) for c in cases if c.must_log)
    may = sorted(key(c) for c in cases)

    def logged() -> list[tuple[str, str, str]]:
        return sorted(outcome(e) for e in access_lines(cluster, spec)[before:])

    def complete() -> bool:
        return _within(must, [x[:2] for x in logged()], may)

    try:
        cluster.lab.wait_until(complete, 3.0, interval=0.02, what="access log")
        time.sleep(0.1)  # nothing else trickles in late
        assert complete(), logged()
    except LabError:
        pytest.fail(f"{spec.label}'s access log: {logged()}, want {must} (at most {may})")
    return got, logged()


def _within(
    low: list[tuple[str, str]], seen: list[tuple[str, str]], high: list[tuple[str, str]]
) -> bool:
    """``low`` <= ``seen`` <= ``high`` as multisets."""
    have, low_c, high_c = Counter(seen), Counter(low), Counter(high)
    return low_c <= have <= high_c


def _diagnose(cluster: DemoCluster) -> str:
    parts = []
    for spec in (*GATEWAYS, DEVICE):
        for what in ("gateway", "agent"):
            tail = tail_of(cluster.log_path(spec, what), 15)
            if tail:
                parts.append(f"--- {spec.label} {what}.log:\n{tail}")
    return "\n".join(parts)


@pytest.fixture
def cluster() -> Iterator[DemoCluster]:
    """The demo's cluster (seed roles, VRRPv3 at 0.1 s so the test stays fast) with the test's
    policy written over the demo's before any gateway starts; torn down even on failure."""
    impls = {NODE1.key: VrrpImpl.HAGATE, NODE2.key: VrrpImpl.HAGATE}
    prefix = "hp" + secrets.token_hex(3)
    built = DemoCluster.create(ClusterPlan(advert_int=0.1, version=3), impls, prefix=prefix)
    try:
        yield built
    finally:
        left = built.close()
        assert left == [], f"namespaces left behind: {left}"


@pytest.mark.lab
def test_same_users_allowed_and_refused_after_failover(cluster: DemoCluster) -> None:
    started = time.monotonic()
    pki = cluster.shared / "pki"
    text = policy_text(pki)
    (cluster.shared / "policy.toml").write_text(text)
    rule_line = text.splitlines().index("[[rule]]") + 1
    _cert, ca_key = load_ca(pki)
    token, _claims = issue_token(ca_key, "carol", [], time.time(), 600)

    cases = [
        Case("bob", basic("bob", BOB_PASSWORD), 200, "password:bob"),
        Case("carol (token)", f"Bearer {token}", 200, "token:carol"),
        Case("mallory (no rule)", basic("mallory", MALLORY_PASSWORD), 403, "password:mallory"),
        Case("anonymous", None, 401, "anonymous"),
        Case("bob, wrong password", basic("bob", "wrong"), 401, "anonymous", must_log=False),
    ]
    expected = {c.name: c.status for c in cases}
    try:
        cluster.bring_up(timeout=15.0)
        assert cluster.master() == NODE1

        on_node1, log1 = answers(cluster, cases, NODE1)
        assert {k: s for k, (s, _) in on_node1.items()} == expected
        # (the anonymous 401's WWW-Authenticate: see test_anonymous_401_challenges below)
        assert [r for _, v, r in log1 if v == "ok"] == [
            f"policy.toml:{rule_line} rule '{RULE}'"
        ] * 2
        assert access_lines(cluster, NODE2) == []  # node-2 answered none of them

        cluster.crash(NODE1)
        assert cluster.node(NODE1).pids() == []  # from now on only node-2 can answer
        # node-1's kernel keeps the VIP configured (its processes are gone, the namespace is
        # not): node-2 adding it and its gratuitous ARP are what move the user's traffic.
        node2 = cluster.node(NODE2)
        vip, mac, garp = ipaddress.ip_address(VIP), node2.mac.lower(), cluster.garp
        assert garp is not None

        def moved() -> bool:
            heard = any(g.ip == vip and g.mac == mac for g in list(garp.events))
            return heard and node2.has_address(VIP)

        cluster.lab.wait_until(moved, 10.0, what="VIP on node-2, its GARP seen by the user")
        cluster.wait_agent(NODE2, 10.0)

        on_node2, log2 = answers(cluster, cases, NODE2)
        assert on_node2 == on_node1  # same statuses, same WWW-Authenticate
        assert log2 == log1  # same identities, same results, by the same rules
    except LabError as exc:
        pytest.fail(f"{exc}\n{_diagnose(cluster)}")
    took = time.monotonic() - started
    assert took < 40, f"took {took:.1f} s"


# -- found by the test above ---------------------------------------------------------------


async def _web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = WEB_BODY.encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


def test_anonymous_401_challenges(tmp_path: Path) -> None:
    """The demo's device names its HTTP service `web`: an anonymous user of a rule that
    admits password and token users gets 401 with a Basic and a Bearer challenge (docs/
    policy.md), not a bare 401. One gateway and one agent in this process, on loopback."""
    from hagate.agent.agent import Agent
    from hagate.agent.config import AgentConfig, ClientConfig, LocalService, Reconnect
    from hagate.gateway.config import Endpoint, GatewayConfig
    from hagate.gateway.protocol import ServiceKind, ServiceSpec
    from hagate.gateway.server import Gateway
    from hagate.lab.demo.configs import make_pki
    from hagate.lab.demo.topology import DOMAIN

    pki = tmp_path / "pki"
    make_pki(pki)
    (tmp_path / "policy.toml").write_text(policy_text(pki))
    server = pki / "issued" / "server" / "gateway"
    loopback = Endpoint("127.0.0.1", 0)
    cfg = GatewayConfig(
        domain=DOMAIN, ca=pki / "ca.crt", cert=server / "cert.pem", key=server / "key.pem",
        crl=None, tunnel=loopback, http=loopback, https=None, admin=None,
        https_cert=server / "cert.pem", https_key=server / "key.pem", tcp_host="127.0.0.1",
        policy=tmp_path / "policy.toml", node="test", heartbeat_ms=100,
    )  # fmt: skip

    async def main() -> tuple[int, str]:
        web = await asyncio.start_server(_web, "127.0.0.1", 0)
        web_port = web.sockets[0].getsockname()[1]
        gw = Gateway(cfg)
        await gw.start()
        device = pki / "issued" / "device" / DEVICE_NAME
        client = ClientConfig(
            "127.0.0.1", gw.addresses["tunnel"][1], DOMAIN,
            device / "ca.crt", device / "cert.pem", device / "key.pem",
        )  # fmt: skip
        spec = ServiceSpec("web", ServiceKind.HTTP, None, web_port)
        agent = Agent(AgentConfig(client, [LocalService(spec, "127.0.0.1", web_port)], Reconnect()))
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 5)
            r, w = await asyncio.open_connection("127.0.0.1", gw.addresses["http"][1])
            w.write(
                f"GET / HTTP/1.1\r\nHost: {device_host()}\r\nConnection: close\r\n\r\n".encode()
            )
            head = (await asyncio.wait_for(r.read(), 5)).partition(b"\r\n\r\n")[0]
            w.close()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await gw.stop()
            web.close()
        lines = head.decode("latin-1").split("\r\n")
        found = [v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                 if k.lower() == "www-authenticate"]  # fmt: skip
        return int(lines[0].split()[1]), found[0] if found else ""

    status, challenge = asyncio.run(main())
    assert status == 401
    assert "Basic" in challenge and "Bearer" in challenge, challenge
