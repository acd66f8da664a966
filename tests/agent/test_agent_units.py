"""Agent pieces on their own: reconnect delays, config parsing."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from hagate.agent.agent import Agent
from hagate.agent.config import (
    AgentConfig,
    ClientConfig,
    Reconnect,
    load_agent_config,
    parse_agent,
)
from hagate.gateway.config import ConfigError
from hagate.gateway.protocol import ServiceKind


def _agent(rc: Reconnect) -> Agent:
    cfg = AgentConfig(ClientConfig("h", 1, "h", Path("a"), Path("b"), Path("c")), [], rc)
    agent = Agent.__new__(Agent)
    agent.cfg = cfg
    return agent


def test_fast_retries_then_jittered_capped_backoff() -> None:
    agent = _agent(Reconnect(fast_retries=3, fast_delay=0.1, base_delay=0.5, max_delay=30))
    for failures in (1, 2, 3):
        delays = [agent._delay(failures) for _ in range(200)]
        assert all(0.05 <= d <= 0.15 for d in delays)
    prev = 0.0
    for failures, step in ((4, 0.5), (5, 1.0), (6, 2.0), (7, 4.0)):
        delays = [agent._delay(failures) for _ in range(500)]
        assert all(step / 2 <= d <= step for d in delays)
        assert statistics.pstdev(delays) > 0  # jittered: agents do not redial in lockstep
        assert statistics.mean(delays) > prev
        prev = statistics.mean(delays)
    assert all(15 <= agent._delay(50) <= 30 for _ in range(100))  # capped


def test_parse_agent_config(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(
        """
gateway = "10.0.0.100"
[tls]
ca = "ca.crt"
cert = "/etc/hagate/dev1.crt"
key = "dev1.key"
[[service]]
name = "web"
type = "http"
target = "127.0.0.1:8080"
[[service]]
name = "ssh"
target = "127.0.0.1:22"
port = 20022
[reconnect]
max_delay_s = 10
"""
    )
    cfg = load_agent_config(tmp_path / "agent.toml")
    assert (cfg.client.host, cfg.client.port, cfg.client.server_name) == (
        "10.0.0.100",
        7443,
        "10.0.0.100",
    )
    assert cfg.client.ca == tmp_path / "ca.crt"
    assert cfg.client.cert == Path("/etc/hagate/dev1.crt")
    web, ssh = cfg.services
    assert web.spec.kind is ServiceKind.HTTP and web.target_port == 8080
    assert ssh.spec.kind is ServiceKind.TCP and ssh.spec.port == 20022
    assert ssh.spec.target_port == 22
    assert cfg.reconnect.max_delay == 10 and cfg.reconnect.fast_retries == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[service]]\nname = "Web"\ntarget = "h:1"\n', "short lower-case label"),
        ('[[service]]\nname = "w"\ntype = "udp"\ntarget = "h:1"\n', "'http' or 'tcp'"),
        ('[[service]]\nname = "w"\n', "target"),
        ('[[service]]\nname = "w"\ntarget = "h:99999"\n', "bad port"),
        ('[[service]]\nname = "w"\ntype = "http"\ntarget = "h:1"\nport = 5\n', "tcp services"),
        (
            '[[service]]\nname = "w"\ntarget = "h:1"\n[[service]]\nname = "w"\ntarget = "h:2"\n',
            "unique",
        ),
        ('colour = "blue"\n', "unknown keys"),
    ],
)
def test_agent_config_errors(extra: str, message: str) -> None:
    import tomllib

    base = 'gateway = "h:1"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
    text = extra + base if extra.startswith("colour") else base + extra
    with pytest.raises(ConfigError, match=message):
        parse_agent(tomllib.loads(text), Path("."))
