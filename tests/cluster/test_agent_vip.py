"""agent.toml ``[gateway] cluster = "cluster.toml"``: the agent dials the VIP that
`hagate cluster vip` gives its device (its certificate's CN), without copying it by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from hagate.agent.config import load_agent_config
from hagate.cli import main
from hagate.gateway.config import ConfigError
from hagate.pki.ca import Role, init_ca, issue

CLUSTER = "".join(
    f'[[node]]\nname = "n{i}"\naddress = "10.2.0.{i}"\nvip = "10.2.1.{i}"\n' for i in (1, 2, 3)
)


def agent_toml(tmp_path: Path, device: str, gateway: str) -> Path:
    bundle = tmp_path / "pki" / "issued" / "device" / device
    path = tmp_path / f"{device}.toml"
    path.write_text(
        f'server_name = "gw.test"\n{gateway}\n\n[tls]\nca = "{bundle / "ca.crt"}"\n'
        f'cert = "{bundle / "cert.pem"}"\nkey = "{bundle / "key.pem"}"\n'
        '\n[[service]]\nname = "http"\ntype = "http"\ntarget = "127.0.0.1:80"\n'
    )
    return path


def test_the_agent_dials_the_vip_hagate_cluster_vip_gives_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init_ca(tmp_path / "pki")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    devices = [f"dev{k}" for k in range(1, 9)]
    assert main(["cluster", "vip", str(tmp_path / "cluster.toml"), *devices]) == 0
    want = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert len(set(want.values())) == 3  # eight names cover the three VIPs
    for device in devices:
        issue(tmp_path / "pki", Role.DEVICE, device)
        cfg = load_agent_config(agent_toml(tmp_path, device, '[gateway]\ncluster = "cluster.toml"'))
        assert (cfg.client.host, cfg.client.port) == (want[device], 7443), device
        assert cfg.client.server_name == "gw.test"
    cfg = load_agent_config(
        agent_toml(tmp_path, "dev1", '[gateway]\ncluster = "cluster.toml"\nport = 8443')
    )
    assert cfg.client.port == 8443
    plain = load_agent_config(agent_toml(tmp_path, "dev1", 'gateway = "10.9.9.9:7443"'))
    assert plain.client.host == "10.9.9.9"  # a fixed gateway as before


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ('[gateway]\ncluster = "missing.toml"', r"\[gateway\] cluster: cannot read .*missing"),
        ('[gateway]\ncluster = "cluster.toml"\nvip = "x"', r"\[gateway\] unknown keys"),
        ('[gateway]\ncluster = "cluster.toml"\nport = 0', r"\[gateway\] port"),
        ('[gateway]\ncluster = "bad.toml"', r"\[gateway\] cluster: .*bad\.toml"),
    ],
)
def test_bad_cluster_gateways_are_named(tmp_path: Path, gateway: str, message: str) -> None:
    init_ca(tmp_path / "pki")
    issue(tmp_path / "pki", Role.DEVICE, "dev1")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    (tmp_path / "bad.toml").write_text("[[node]]\nname = 1\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_agent_config(agent_toml(tmp_path, "dev1", gateway))
    assert str(err.value).startswith(str(tmp_path / "dev1.toml"))
