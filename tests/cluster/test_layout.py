"""cluster.toml -> N keepalived.conf files that hagate's own checker accepts as one cluster;
the VIP ladder; the per-device VIP; `hagate cluster keepalived/vip/status`."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from tests.cluster.conftest import EtcdServer

from hagate.cli import main
from hagate.cluster.layout import Layout, LayoutError, parse_layout, vip_for
from hagate.config.check import check

DESC = """
interface = "eth0"
vrid_base = 60
auth_pass = "clu5ter"
check = "/usr/local/bin/hagate gateway check"
[[node]]
name = "node-1"
address = "10.1.1.5"
vip = "10.1.1.101"
[[node]]
name = "node-2"
address = "10.1.1.10"
vip = "10.1.1.102"
[[node]]
name = "node-3"
address = "10.1.1.15"
vip = "10.1.1.103"
"""


def test_generated_files_form_one_cluster_for_hagate_check(tmp_path: Path) -> None:
    desc = tmp_path / "cluster.toml"
    desc.write_text(DESC)
    assert main(["cluster", "keepalived", str(desc), "-o", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out").glob("*.conf"))
    assert [f.name for f in files] == ["node-1.conf", "node-2.conf", "node-3.conf"]
    report = check([str(f) for f in files], check_files=False)
    errors = [str(f) for f in report.findings if f.severity.name == "ERROR"]
    assert not errors, errors
    text = files[1].read_text()
    assert text.count("vrrp_instance") == 3 and "virtual_router_id 61" in text
    assert "state MASTER" in text.split("vrrp_instance VI_2")[1].split("}")[0]


def test_priorities_rotate_and_a_dead_nodes_vip_goes_to_the_next_in_ring() -> None:
    layout = load_layout_text(DESC)
    assert [[layout.priority(i, j) for j in range(3)] for i in range(3)] == [
        [250, 230, 240],
        [240, 250, 230],
        [230, 240, 250],
    ]
    alive = {"node-1", "node-2", "node-3"}
    assert [layout.master_of(j, alive) for j in range(3)] == ["node-1", "node-2", "node-3"]
    assert [layout.master_of(j, alive - {"node-1"}) for j in range(3)] == [
        "node-2",
        "node-2",
        "node-3",
    ]
    assert 250 + layout.check_weight < 230  # a failing check loses to every healthy node


def test_thirty_nodes_spread_each_dead_nodes_vip_to_one_survivor() -> None:
    nodes = "".join(
        f'[[node]]\nname = "n{i}"\naddress = "10.2.0.{i}"\nvip = "10.2.1.{i}"\n'
        for i in range(1, 31)
    )
    layout = load_layout_text(nodes)
    assert min(layout.priority(i, j) for i in range(30) for j in range(30)) >= 1
    alive = {f"n{i}" for i in range(1, 31)} - {"n5"}
    holders = Counter(layout.master_of(j, alive) for j in range(30))
    assert max(holders.values()) == 2  # n6 holds its own VIP and n5's, nobody more


def test_vip_for_is_stable_spread_and_moves_little_when_a_vip_is_added() -> None:
    vips = [f"10.1.1.{i}" for i in range(101, 104)]
    devices = [f"dev{i}" for i in range(3000)]
    chosen = {d: vip_for(d, vips) for d in devices}
    assert chosen == {d: vip_for(d, list(reversed(vips))) for d in devices}  # order-free
    counts = Counter(chosen.values())
    assert min(counts.values()) > 900
    more = {d: vip_for(d, [*vips, "10.1.1.104"]) for d in devices}
    moved = [d for d in devices if more[d] != chosen[d]]
    assert all(more[d] == "10.1.1.104" for d in moved) and len(moved) < 1000


def test_cli_vip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    desc = tmp_path / "cluster.toml"
    desc.write_text(DESC)
    assert main(["cluster", "vip", str(desc), "dev1", "dev2"]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "dev1" and out[1] == vip_for(
        "dev1", ["10.1.1.101", "10.1.1.102", "10.1.1.103"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one [[node]]"),
        ('[[node]]\nname = "A"\naddress = "10.0.0.1"\nvip = "10.0.0.2"\n', "name 'A'"),
        ('[[node]]\nname = "a"\naddress = "10.0.0.1"\nvip = "10.0.0.1"\n', "used twice"),
        ('[[node]]\nname = "a"\naddress = "x"\nvip = "10.0.0.1"\n', "not an IPv4"),
        (
            'auth_pass = "123456789"\n'
            '[[node]]\nname = "a"\naddress = "10.0.0.1"\nvip = "10.0.0.3"\n',
            "auth_pass",
        ),
        ("colour = 1\n", "unknown keys"),
    ],
)
def test_bad_descriptions_are_named(text: str, message: str) -> None:
    with pytest.raises(LayoutError, match=r"^cluster\.toml: ") as err:
        load_layout_text(text)
    assert message in str(err.value)


def test_cli_reports_a_bad_description_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    desc = tmp_path / "cluster.toml"
    desc.write_text("[[node]]\nname = 3\n")
    assert main(["cluster", "keepalived", str(desc)]) == 1
    assert "cluster.toml: node 1" in capsys.readouterr().err


def test_cli_status_json(
    tmp_path: Path, etcd: EtcdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from hagate.cluster.etcd import Etcd
    from hagate.cluster.registry import Registry

    host, port = etcd.endpoint
    gw = tmp_path / "gateway.toml"
    gw.write_text(
        'domain = "gw.test"\n[tls]\nca = "ca"\ncert = "c"\nkey = "k"\n'
        f'[cluster]\netcd = ["http://{host}:{port}", "http://127.0.0.1:1"]\n'
        'peer = "127.0.0.1:7444"\n'
        'cert = "n.pem"\nkey = "n.key"\netcd_timeout = 0.5\n'
    )
    desc = tmp_path / "cluster.toml"
    desc.write_text(DESC)

    async def publish() -> Registry:
        reg = Registry(Etcd([etcd.endpoint]), "node-2", "127.0.0.1:7444", 5)
        reg.set_addresses(("10.1.1.10", "10.1.1.102"))
        reg.start()
        reg.publish("dev1", "s1", ())
        assert await reg.wait_synced(5)
        await reg.etcd.close()
        return reg

    reg = asyncio.run(publish())
    assert reg.lease
    assert main(["cluster", "status", "-c", str(gw), "-d", str(desc), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["etcd"]["healthy"] == 1 and len(report["etcd"]["members"]) == 2
    assert report["nodes"] == [
        {
            "name": "node-2",
            "peer": "127.0.0.1:7444",
            "devices": 1,
            "addresses": ["10.1.1.10", "10.1.1.102"],
        }
    ]
    assert [v["master"] for v in report["vips"]] == ["node-2"] * 3
    assert [v["held_by"] for v in report["vips"]] == [[], ["node-2"], []]
    assert main(["cluster", "status", "-c", str(gw)]) == 0
    text = capsys.readouterr().out
    assert "1/2 members answer" in text and "node-2" in text


def load_layout_text(text: str) -> Layout:
    return parse_layout(tomllib.loads(text))


def test_several_vips_per_node_spread_a_dead_nodes_load(tmp_path: Path) -> None:
    nodes = "".join(
        f'[[node]]\nname = "n{i}"\naddress = "10.3.0.{i}"\n'
        f'vips = ["10.3.1.{i}", "10.3.2.{i}", "10.3.3.{i}"]\n'
        for i in range(1, 5)
    )
    layout = load_layout_text(nodes)
    assert len(layout.vips()) == 12
    alive = {"n1", "n2", "n3", "n4"}
    assert [layout.master_of(j, alive) for j in range(12)] == ["n1", "n2", "n3", "n4"] * 3
    after = [layout.master_of(j, alive - {"n1"}) for j in range(12)]
    takers = [after[j] for j, inst in enumerate(layout.instances()) if inst.owner == 0]
    assert sorted(str(t) for t in takers) == ["n2", "n3", "n4"]  # one each, not all onto n2
    desc = tmp_path / "cluster.toml"
    desc.write_text(nodes)
    assert main(["cluster", "keepalived", str(desc), "-o", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out").glob("*.conf"))
    report = check([str(f) for f in files], check_files=False)
    assert not [f for f in report.findings if f.severity.name == "ERROR"]
    assert files[0].read_text().count("state MASTER") == 3
