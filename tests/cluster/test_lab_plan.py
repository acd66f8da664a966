"""The multi-node lab's plan (pure: no namespaces): several VIPs per node, as bench/scale.py
uses them to keep a crashed node's successors under the file descriptor limit."""

from __future__ import annotations

import tomllib

import pytest

from hagate.cluster.layout import parse_layout, vip_for
from hagate.lab.errors import LabError
from hagate.lab.multinode import Plan


def test_one_vip_per_node_is_the_lab_as_before() -> None:
    plan = Plan()
    assert plan.vips() == ["10.1.1.101", "10.1.1.102", "10.1.1.103"]
    assert 'vip = "10.1.1.101"' in plan.cluster_toml()
    assert "vips" not in plan.cluster_toml()


def test_two_vips_per_node_split_a_dead_nodes_devices_over_both_survivors() -> None:
    plan = Plan(vips_per_node=2)
    layout = parse_layout(tomllib.loads(plan.cluster_toml()))
    assert layout == plan.layout()  # what agents and `hagate cluster` read is what the lab runs
    assert plan.node_vips(1) == ["10.1.1.101", "10.1.1.111"]
    assert [plan.owner(v) for v in plan.vips()] == [1, 2, 3, 1, 2, 3]
    takers = {
        layout.master_of(k, {"n2", "n3"}) for k, v in enumerate(plan.vips()) if plan.owner(v) == 1
    }
    assert takers == {"n2", "n3"}
    # devices hash over all six VIPs: every node gets some on each of its VIPs
    homes = {vip_for(f"d{k}", plan.vips()) for k in range(200)}
    assert homes == set(plan.vips())


def test_vips_per_node_out_of_range_is_refused() -> None:
    with pytest.raises(LabError, match="vips_per_node"):
        Plan(vips_per_node=5)
