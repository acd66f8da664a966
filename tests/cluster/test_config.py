"""[cluster] in gateway.toml: parsed into ClusterConfig, bad values named by file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hagate.gateway.config import ConfigError, parse_gateway_config

BASE = {"domain": "gw.test", "tls": {"ca": "ca.crt", "cert": "c.pem", "key": "k.pem"}}


def parse(cluster: object) -> object:
    return parse_gateway_config({**BASE, "cluster": cluster}, Path("/etc/hagate")).cluster


def test_cluster_section() -> None:
    cfg = parse(
        {
            "etcd": ["10.0.0.1:2379", "10.0.0.2"],
            "peer": "0.0.0.0:7444",
            "advertise": "10.0.0.5:7444",
            "cert": "node.pem",
            "key": "/k/node.key",
            "lease_ttl": 5,
        }
    )
    assert cfg is not None
    assert cfg.etcd == (("10.0.0.1", 2379), ("10.0.0.2", 2379))  # type: ignore[attr-defined]
    assert cfg.peer == ("0.0.0.0", 7444)  # type: ignore[attr-defined]
    assert cfg.cert == Path("/etc/hagate/node.pem")  # type: ignore[attr-defined]
    assert cfg.key == Path("/k/node.key")  # type: ignore[attr-defined]
    assert parse_gateway_config(BASE, Path(".")).cluster is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"peer": "1.2.3.4:1", "cert": "c", "key": "k"}, "[cluster] etcd"),
        ({"etcd": ["x:1"], "cert": "c", "key": "k"}, "[cluster] peer"),
        ({"etcd": ["x:1"], "peer": "0.0.0.0:7444", "cert": "c", "key": "k"}, "advertise"),
        ({"etcd": ["x:99999"], "peer": "1.1.1.1:1", "cert": "c", "key": "k"}, "bad port"),
        ({"etcd": ["x:1"], "peer": "1.1.1.1:1", "cert": "c", "key": "k", "ttl": 1}, "unknown"),
        ({"etcd": ["x:1"], "peer": "1.1.1.1:1", "cert": "c", "key": "k", "lease_ttl": 1}, "ttl"),
        ({"etcd": ["x:1"], "peer": "1.1.1.1:1"}, "cert and key"),
    ],
)
def test_bad_cluster_sections_are_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^gateway\.toml: ") as err:
        parse(table)
    assert message in str(err.value)
