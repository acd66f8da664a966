"""virtual_routes / virtual_rules: keepalived 2.2.7's forms into the model, the rest named
with file:line (the entry dropped, as keepalived drops what it cannot read)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path

from hagate.config import load
from hagate.config.model import RouteType

CONF = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        10.1.1.100/24
    }
    virtual_routes {
        10.2.0.0/16 via 10.1.1.1 dev eth0 metric 10 table 100
        blackhole 10.9.0.0/16
        to 10.3.0.0/16 dev eth0 scope link src 10.1.1.100
        unreachable default table main
        10.5.0.0/16 gw 10.1.1.1 no_track
        inet6 2001:db8::/32 via fe80::1 dev eth0 priority 5
        10.4.0.1/16 via 10.1.1.1
        10.5.0.0/16 via 10.1.1.1 mtu 1400
        10.6.0.0/16
        blackhole 10.7.0.0/16 dev eth0
        10.8.0.0/16 via 2001:db8::1
        10.8.0.0/16 via 10.1.1.1 table nosuch
    }
    virtual_rules {
        from 10.1.1.100 table 100 priority 100
        not to 10.8.0.0/16 iif eth0 oif eth1 lookup main preference 7
        from 10.1.1.0/24 table 100
        inet6 table 100
        from 10.1.1.0/24 table 100 fwmark 3
        from 10.1.1.0/24 priority 9
        from 10.1.1.0/24 to 2001:db8::/32 table 1
    }
}
"""


def _load(tmp_path: Path) -> tuple[object, list[str]]:
    path = tmp_path / "k.conf"
    path.write_text(CONF)
    config, findings = load(path)
    return config, [f"{f.line}: {f.message}" for f in findings]


def test_routes_in_the_model_and_the_rest_named(tmp_path: Path) -> None:
    config, findings = _load(tmp_path)
    inst = config.vrrp_instances[0]  # type: ignore[attr-defined]
    r = inst.virtual_routes
    assert [str(x.dst) for x in r] == [
        "10.2.0.0/16", "10.9.0.0/16", "10.3.0.0/16", "0.0.0.0/0", "10.5.0.0/16", "2001:db8::/32",
    ]  # fmt: skip
    assert (r[0].via, r[0].dev, r[0].metric, r[0].table) == (
        IPv4Address("10.1.1.1"),
        "eth0",
        10,
        100,
    )
    assert r[1].type is RouteType.BLACKHOLE and r[1].table == 254 and r[1].track
    assert (r[2].scope, r[2].src, r[2].dev) == ("link", IPv4Address("10.1.1.100"), "eth0")
    assert r[3].type is RouteType.UNREACHABLE and r[3].dst == IPv4Network("0.0.0.0/0")
    assert not r[4].track and r[5].dst == IPv6Network("2001:db8::/32") and r[5].metric == 5
    text = "\n".join(findings)
    for line, words in (
        (14, "has host bits set"),
        (15, "route option 'mtu' is not supported by hagate"),
        (16, "needs 'via' or 'dev'"),
        (17, "blackhole route takes no via/dev"),
        (18, "mixes IPv4 and IPv6"),
        (19, "routing table 'nosuch'"),
        (12, '"gw" for routes is deprecated'),
    ):
        assert any(f.startswith(f"{line}: ") and words in f for f in findings), (line, text)
    assert "not supported by hagate; ignored" not in text  # no longer "unsupported keyword"


def test_rules_in_the_model_with_keepalived_priorities(tmp_path: Path) -> None:
    config, findings = _load(tmp_path)
    rules = config.vrrp_instances[0].virtual_rules  # type: ignore[attr-defined]
    assert [str(x) for x in rules] == [
        "from 10.1.1.100/32 priority 100 table 100",
        "not from all to 10.8.0.0/16 iif eth0 oif eth1 priority 7 table 254",
        "from 10.1.1.0/24 priority 16384 table 100",
        "from all priority 16384 table 100",  # IPv6: its own count
    ]
    assert rules[3].family == 6 and rules[1].invert
    for line, words in (
        (24, "rule has no priority: keepalived sets 16384"),
        (26, "rule option 'fwmark' is not supported"),
        (27, "a rule needs a table"),
        (28, "mixes IPv4 and IPv6"),
    ):
        assert any(f.startswith(f"{line}: ") and words in f for f in findings), (line, findings)
