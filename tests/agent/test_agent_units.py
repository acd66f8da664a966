"""Agent pieces on their own: reconnect delays, config parsing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from hagate.agent.config import Reconnect, load_agent_config, parse_agent
from hagate.agent.redial import Backoff, ScheduleKind, Steady
from hagate.gateway.config import ConfigError
from hagate.gateway.protocol import ServiceKind


def test_reconnect_picks_the_schedule() -> None:
    assert isinstance(Reconnect().plan(), Steady)
    old = Reconnect(fast_retries=3, fast_delay=0.1, schedule=ScheduleKind.BACKOFF).plan()
    assert old == Backoff(3, 0.1, 0.5, 30.0)


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
period_ms = 200
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
    assert cfg.reconnect.plan() == Steady(0.05, 0.2, 15.0, 10.0)


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
        ('[[service]]\nname = "w"\ntarget = "h:1"\n[reconnect]\nschedule = "x"\n', "one of"),
        ('[[service]]\nname = "w"\ntarget = "h:1"\n[reconnect]\nperiod_ms = 0\n', "period"),
        ('[[service]]\nname = "w"\ntarget = "h:1"\n[reconnect]\nspeed = 1\n', "unknown"),
    ],
)
def test_agent_config_errors(extra: str, message: str) -> None:
    import tomllib

    base = 'gateway = "h:1"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
    text = extra + base if extra.startswith("colour") else base + extra
    with pytest.raises(ConfigError, match=message):
        parse_agent(tomllib.loads(text), Path("."))


def test_a_cancellation_that_wait_for_swallowed_still_ends_the_redial_loop() -> None:
    """Python 3.11's wait_for returns the result when the cancel and the result meet.

    That made ``task.cancel()`` of an agent hang a CI run for 120 s: the redial loop went on.
    """
    from hagate.agent.agent import raise_if_cancelled

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        fut: asyncio.Future[int] = loop.create_future()

        async def body() -> None:
            me = asyncio.current_task()
            assert me is not None

            def both() -> None:
                fut.set_result(1)
                me.cancel()

            loop.call_soon(both)
            await asyncio.wait_for(fut, 5)
            seen.append("returned")  # 3.11: the cancel was swallowed (3.12+: never here)
            raise_if_cancelled()
            seen.append("went on")

        task = asyncio.create_task(body())
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        return seen

    assert "went on" not in asyncio.run(main())


def test_fleet_runner_takes_a_nice_for_the_bench() -> None:
    from hagate.agent.fleet import parse_args

    base = ["--pki", "p", "--gateway", "10.1.1.100:7443", "--server-name", "gw", "--count", "2"]
    spec, _ = parse_args([*base, "--nice", "10"])
    assert spec.nice == 10 and spec.count == 2
    assert parse_args(base)[0].nice == 0  # default: the process's own priority
