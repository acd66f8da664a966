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


BASIC = {"peer": "10.0.0.5:7444", "cert": "node.pem", "key": "node.key"}


def test_etcd_is_tls_by_default_with_the_cluster_ca_and_the_node_certificate() -> None:
    cfg = parse({**BASIC, "etcd": ["10.0.0.1:2379", "https://10.0.0.2:2379"]})
    sec = cfg.etcd_security  # type: ignore[attr-defined]
    assert sec.tls and sec.ca == Path("/etc/hagate/ca.crt")
    assert (sec.cert, sec.key) == (Path("/etc/hagate/node.pem"), Path("/etc/hagate/node.key"))
    assert cfg.etcd == (("10.0.0.1", 2379), ("10.0.0.2", 2379))  # type: ignore[attr-defined]
    assert cfg.warnings == ()  # type: ignore[attr-defined]
    own = parse(
        {
            **BASIC,
            "etcd": ["e1:2379"],
            "etcd_ca": "etcd-pki/ca.crt",
            "etcd_cert": "etcd-pki/n1.crt",
            "etcd_key": "etcd-pki/n1.key",
            "etcd_server_name": "etcd.internal",
            "etcd_user": "n1",
            "etcd_password_file": "/run/secrets/etcd",
        }
    )
    sec = own.etcd_security  # type: ignore[attr-defined]
    assert sec.ca == Path("/etc/hagate/etcd-pki/ca.crt") and sec.server_name == "etcd.internal"
    assert sec.cert == Path("/etc/hagate/etcd-pki/n1.crt")
    assert (sec.user, sec.password_file) == ("n1", Path("/run/secrets/etcd"))


def test_plain_http_only_to_loopback_or_knowingly_and_then_warned() -> None:
    local = parse({**BASIC, "etcd": ["http://127.0.0.1:2379"]})
    assert not local.etcd_security.tls and local.warnings == ()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"plain http to 10\.0\.0\.1:2379.*etcd_insecure"):
        parse({**BASIC, "etcd": ["http://10.0.0.1:2379"]})
    known = parse({**BASIC, "etcd": ["http://10.0.0.1:2379"], "etcd_insecure": True})
    assert not known.etcd_security.tls  # type: ignore[attr-defined]
    assert "read and rewrite the device registry" in known.warnings[0]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"etcd_password": "hunter2"}, "never inline"),
        ({"etcd_user": "n1"}, "etcd_user and etcd_password_file"),
        ({"etcd_cert": "c.pem"}, "etcd_cert and etcd_key"),
        ({"etcd_insecure": "yes"}, "etcd_insecure: true or false"),
        ({"etcd": ["http://1.2.3.4:1", "1.2.3.5:1"]}, "every endpoint"),
    ],
)
def test_bad_etcd_security_is_named(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^gateway\.toml: \[cluster\] ") as err:
        parse({**BASIC, "etcd": ["10.0.0.1:2379"], **extra})
    assert message in str(err.value)


def test_the_password_file_is_read_at_start_and_named_when_missing(tmp_path: Path) -> None:
    from hagate.cluster.config import EtcdSecurity

    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert EtcdSecurity(user="n1", password_file=pw).password() == "s3cret"
    with pytest.raises(ValueError, match=r"etcd_password_file .*missing"):
        EtcdSecurity(user="n1", password_file=tmp_path / "missing").password()
