"""hagate.bridge: the one keepalived.conf -> VRRP core mapping (daemon and simulator)."""

from __future__ import annotations

import dataclasses
import re
from ipaddress import ip_address
from pathlib import Path

import pytest

from hagate.bridge import (
    ADDRESS_CHECK,
    BridgeError,
    InstanceMap,
    TrackKind,
    bare_name,
    map_instance,
)
from hagate.config import load
from hagate.config import model as cfg
from hagate.daemon.plan import plan_instance
from hagate.simulate.cluster import load_cluster
from hagate.vrrp.advert import AuthType
from hagate.vrrp.receive import AddressCheck
from hagate.vrrp.state import State
from hagate.vrrp.tracking import Tracker, effective_priority

SEED = Path(__file__).parent / "simulate" / "configs" / "seed"


def conf(tmp_path: Path, text: str) -> cfg.Config:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    config, _ = load(path)
    return config


def mapped(config: cfg.Config, name: str, source: str = "10.0.0.5") -> InstanceMap:
    inst = config.instance(name)
    assert inst is not None
    return map_instance(config, inst, ip_address(source))


def weights(m: InstanceMap) -> dict[str, tuple[int, bool, str]]:
    return {t.item.name: (t.item.weight, t.item.reverse, t.origin) for t in m.tracked}


def test_seed_config() -> None:
    config, _ = load(SEED / "node1.conf")
    m = mapped(config, "VI_1", "10.1.1.5")
    p = m.params
    assert (p.vrid, p.priority, p.version, p.advert_int) == (51, 255, 2, 1.0)
    assert p.start_state is State.MASTER and p.primary_address == ip_address("10.1.1.5")
    assert p.auth_type is AuthType.PASS and p.auth_data == b"seedpass"
    assert m.receive.auth_pass == b"seedpass"
    assert m.destinations == (ip_address("10.1.1.10"),) and not m.multicast
    assert m.receive.address_check is AddressCheck.STRICT is ADDRESS_CHECK
    assert weights(m) == {
        "interface eth0": (0, False, "own interface"),
        "script chk_httpd": (-50, False, "instance"),
        "script chk_network": (-20, False, "instance"),
    }
    assert any("priority 255: tracking weights are ignored" in n for n in m.notes)


def test_daemon_and_simulator_map_the_same(tmp_path: Path) -> None:
    config, _ = load(SEED / "node2.conf")
    inst = config.vrrp_instances[0]
    src = inst.unicast_src_ip
    assert src is not None
    plan = plan_instance(config, inst, [src])
    sim = next(load_cluster([str(SEED / "node2.conf")]).instances())
    assert plan.receive == sim.receive  # the receive checks agree, address check included
    strip = {t.name: dataclasses.replace(t, name=t.name.split()[-1]) for t in plan.params.tracked}
    assert dataclasses.replace(plan.params, tracked=tuple(strip.values())) == sim.params


def test_sync_group_inheritance(tmp_path: Path) -> None:
    config = conf(
        tmp_path,
        """
vrrp_script chk_a {
    script /bin/true
    weight -30
}
vrrp_script chk_b {
    script /bin/true
    weight 10
}
vrrp_script chk_z {
    script /bin/true
    weight 0
}
vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
    track_script {
        chk_a
        chk_z weight 5
    }
    track_interface {
        eth2 weight -15
    }
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.100/24
    }
    track_script {
        chk_b
        chk_z
    }
    track_interface {
        eth1 weight -10
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    priority 90
    virtual_ipaddress {
        10.0.0.101/24
    }
}
""",
    )
    m1 = mapped(config, "VI_1")
    # keepalived: a member's weighted script is dropped, its interfaces lose their weight,
    # the group's items come with their weights, and the member's unweighted chk_z wins.
    assert weights(m1) == {
        "interface eth0": (0, False, "own interface"),
        "interface eth1": (0, False, "instance"),
        "interface eth2": (-15, False, "vrrp_sync_group G"),
        "script chk_z": (0, False, "instance"),
        "script chk_a": (-30, False, "vrrp_sync_group G"),
    }
    assert any("chk_b with a weight is ignored" in n for n in m1.notes)
    m2 = mapped(config, "VI_2")
    assert weights(m2) == {
        "interface eth0": (0, False, "own interface"),
        "interface eth2": (-15, False, "vrrp_sync_group G"),
        "script chk_a": (-30, False, "vrrp_sync_group G"),
        "script chk_z": (5, False, "vrrp_sync_group G"),
    }


def test_sync_group_with_an_address_owner_clears_group_weights(tmp_path: Path) -> None:
    config = conf(
        tmp_path,
        """
vrrp_script chk_a {
    script /bin/true
    weight -30
}
vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
    track_script {
        chk_a
    }
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 255
    virtual_ipaddress {
        10.0.0.100/24
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        10.0.0.101/24
    }
}
""",
    )
    assert weights(mapped(config, "VI_2"))["script chk_a"] == (0, False, "vrrp_sync_group G")


IPV6 = """
vrrp_instance V6 {
    interface eth0
    virtual_router_id 9
    advert_int 0.5
    virtual_ipaddress {
        fd00::100/64
    }
}
vrrp_instance V3 {
    interface eth0
    version 3
    virtual_router_id 10
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        10.0.0.100/24
    }
}
"""


def test_ipv6_forces_v3_even_on_a_hand_made_model(tmp_path: Path) -> None:
    config = conf(tmp_path, IPV6)
    m = mapped(config, "V6", "fe80::1")
    assert m.family == 6 and m.params.version == 3 and m.receive.version == 3
    assert m.destinations == (ip_address("ff02::12"),) and m.multicast
    inst = config.instance("V6")
    assert inst is not None
    # The loader's model is complete (one home for the rule); a hand-made inconsistent
    # one is refused with the reason, not silently corrected a second time.
    with pytest.raises(BridgeError, match=r"VRRPv2 is IPv4 only"):
        hand_made = dataclasses.replace(inst, version=2, advert_int=1.0)
        map_instance(config, hand_made, ip_address("fe80::1"))


def test_v3_ignores_authentication(tmp_path: Path) -> None:
    config = conf(tmp_path, IPV6)
    inst = config.instance("V3")
    assert inst is not None
    m = map_instance(config, inst, ip_address("10.0.0.5"))
    assert m.params.auth_type is AuthType.NONE and m.params.auth_data == b""
    assert m.receive.auth_type is AuthType.NONE and m.receive.auth_pass == b""
    # the loader drops it with a finding; a hand-made model that keeps it is refused
    inst = dataclasses.replace(inst, auth_type=cfg.AuthType.PASS, auth_pass="secret")
    with pytest.raises(BridgeError, match=r"VRRPv3 has no authentication"):
        map_instance(config, inst, ip_address("10.0.0.5"))
    with pytest.raises(BridgeError, match=r"\(V3\) auth_type AH"):
        v2 = dataclasses.replace(inst, version=2, auth_type=cfg.AuthType.AH)
        map_instance(config, v2, ip_address("10.0.0.5"))


REVERSE = """
vrrp_script chk_up {
    script /bin/true
    weight 10 reverse
}
vrrp_script chk_down {
    script /bin/true
    weight -10
}
vrrp_script chk_gate {
    script /bin/true
    init_fail
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.100/24
    }
    track_script {
        chk_up
        chk_down weight -20 reverse
        chk_gate
    }
    track_interface {
        eth1 weight 5 reverse
    }
}
"""


def test_reverse_weights_score_as_keepalived(tmp_path: Path) -> None:
    m = mapped(conf(tmp_path, REVERSE), "VI_1")
    assert weights(m)["script chk_up"] == (10, True, "instance")  # the script's own reverse
    assert weights(m)["script chk_down"] == (-20, True, "instance")  # track_script override
    tracker = Tracker(m.params.tracked)
    # scripts start with no result: no weight in force; interfaces start up
    assert tracker.adjustment() == -5
    tracker.set("script chk_up", True)
    assert effective_priority(100, tracker.adjustment()) == 85  # weight 10 reverse: -10
    tracker.set("script chk_up", False)
    tracker.set("script chk_down", False)
    tracker.set("interface eth1", False)
    assert effective_priority(100, tracker.adjustment()) == 120  # -20 reverse failed: +20


def test_init_fail_has_no_effect(tmp_path: Path) -> None:
    m = mapped(conf(tmp_path, REVERSE), "VI_1")
    gate = next(t for t in m.scripts if t.name == "chk_gate")
    # keepalived 2.2.7 alloc_track_script() resets init_state: the instance waits for the
    # first result instead of starting in FAULT.
    assert gate.item.weight == 0 and gate.item.initially_ok
    assert not Tracker(m.params.tracked).faulted()
    assert any("init_fail has no effect" in n for n in m.notes)
    down = next(t for t in m.scripts if t.name == "chk_down")
    assert down.item.adjustment(down.item.initially_ok) == 0


def test_own_interface_tracked_once_with_weight_0(tmp_path: Path) -> None:
    config = conf(tmp_path, REVERSE)
    inst = config.instance("VI_1")
    assert inst is not None
    own = cfg.TrackInterface("eth0", -50)
    m = map_instance(
        config,
        dataclasses.replace(inst, track_interfaces=(own, *inst.track_interfaces)),
        ip_address("10.0.0.5"),
    )
    assert weights(m)["interface eth0"] == (0, False, "own interface")
    assert any("is its own interface: ignored" in n for n in m.notes)
    assert [t.kind for t in m.tracked[:2]] == [TrackKind.INTERFACE] * 2  # interfaces first


def test_bare_names_skip_a_script_named_like_an_interface(tmp_path: Path) -> None:
    config = conf(
        tmp_path,
        """
vrrp_script eth0 {
    script /bin/true
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        10.0.0.100/24
    }
    track_script {
        eth0
        nosuch
    }
}
""",
    )
    inst = config.instance("VI_1")
    assert inst is not None
    m = map_instance(config, inst, ip_address("10.0.0.5"), item_name=bare_name)
    assert [t.item.name for t in m.tracked] == ["eth0"]
    assert any("an interface has that name" in n for n in m.notes)
    assert any("nosuch: no such vrrp_script" in n for n in m.notes)
    prefixed = map_instance(config, inst, ip_address("10.0.0.5"))
    assert [t.item.name for t in prefixed.tracked] == ["interface eth0", "script eth0"]


def test_global_receive_options(tmp_path: Path) -> None:
    config = conf(tmp_path, REVERSE)
    g = dataclasses.replace(
        config.global_defs, vrrp_v3_checksum_as_v2=True, vrrp_check_unicast_src=True
    )
    inst = config.instance("VI_1")
    assert inst is not None
    m = map_instance(dataclasses.replace(config, global_defs=g), inst, ip_address("10.0.0.5"))
    assert m.receive.v3_checksum_as_v2 and m.receive.check_unicast_src


def test_bad_values_are_bridge_errors(tmp_path: Path) -> None:
    config = conf(tmp_path, REVERSE)
    inst = config.instance("VI_1")
    assert inst is not None
    with pytest.raises(BridgeError, match=r"VI_1.*IPv4 only"):
        map_instance(config, inst, ip_address("fe80::1"))


GROUPED = """
global_defs {
    vrrp_lower_prio_no_advert
}
vrrp_script chk {
    script /bin/true
    weight -20
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
    KEYWORD
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    higher_prio_send_advert
    track_script {
        chk
    }
    virtual_ipaddress {
        10.0.0.1
    }
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 2
    virtual_ipaddress {
        10.0.1.1
    }
}
"""


def test_sync_group_tracking_weight_keeps_member_weights(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    for keyword, weights in (("sync_group_tracking_weight", [-20]), ("", [])):
        path.write_text(GROUPED.replace("KEYWORD", keyword))
        config, _ = load(path)
        mapped = map_instance(config, config.vrrp_instances[0], ip_address("10.0.0.5"))
        assert mapped.sync_group == "G1"
        # keepalived drops a member's weighted track_script unless the group keeps weights
        assert [t.item.weight for t in mapped.scripts] == weights
        assert mapped.params.higher_prio_send_advert and mapped.params.lower_prio_no_advert


KNOBS = """
global_defs {
    STRICT
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    version VERSION
    EXTRA
    virtual_ipaddress {
        10.0.0.1
    }
}
"""


def knobs(tmp_path: Path, extra: str, strict: bool = False, version: int = 3) -> InstanceMap:
    text = KNOBS.replace("EXTRA", extra).replace("STRICT", "vrrp_strict" if strict else "")
    path = tmp_path / "k.conf"
    path.write_text(text.replace("VERSION", str(version)))
    config, _ = load(path)
    return map_instance(config, config.vrrp_instances[0], ip_address("10.0.0.5"))


def test_unicast_fault_no_peer_holds_the_instance_in_fault(tmp_path: Path) -> None:
    m = knobs(tmp_path, "unicast_fault_no_peer")
    tracker = Tracker(m.params.tracked)
    assert tracker.faulted() == ("config no unicast peer",)
    assert any("going to fault state" in n for n in m.notes)
    assert not knobs(tmp_path, "").params.tracked[1:]  # only the own interface otherwise


def test_mcast_dst_ip_and_unicast_ttl(tmp_path: Path) -> None:
    m = knobs(tmp_path, "mcast_dst_ip 224.0.0.99")
    assert m.destinations == (ip_address("224.0.0.99"),) and m.multicast
    u = knobs(tmp_path, "unicast_ttl 64\n    unicast_peer {\n        10.0.0.6\n    }")
    assert u.unicast_ttl == 64 and u.destinations == (ip_address("10.0.0.6"),)
    assert knobs(tmp_path, "unicast_ttl 64").unicast_ttl == 255  # no peers: reset


def test_accept_mode_defaults_as_keepalived(tmp_path: Path) -> None:
    assert knobs(tmp_path, "").accept
    assert not knobs(tmp_path, "", strict=True).accept  # strict: RFC's Accept_Mode false
    assert knobs(tmp_path, "accept", strict=True).accept  # v3 may accept
    assert not knobs(tmp_path, "accept", strict=True, version=2).accept  # RFC 3768 has none
    assert not knobs(tmp_path, "no_accept").accept


TRACKS = """
vrrp_track_process nginx {
    process nginx
    quorum 2
    weight -30
}
vrrp_track_process strict {
    process /usr/sbin/haproxy -f /etc/haproxy.cfg
    quorum_max 1
}
track_file maint {
    file /run/maint
    weight 0
}
vrrp_track_file scaled {
    file /run/scaled
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    track_process {
        nginx
        strict weight 0
    }
    track_file {
        maint
        scaled
        nothere
    }
    virtual_ipaddress {
        10.0.0.1
    }
}
"""


def test_track_process_and_track_file(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(TRACKS)
    config, findings = load(path)
    assert not [f for f in findings if "not supported" in f.message]
    nginx, strict = config.vrrp_track_processes
    assert (nginx.process, nginx.quorum, nginx.weight) == ("nginx", 2, -30)
    assert strict.full_command and strict.params == ("-f", "/etc/haproxy.cfg")
    assert strict.param_match == "exact" and strict.quorum_max == 1
    maint, scaled = config.vrrp_track_files
    assert (maint.file, maint.weight, scaled.weight) == ("/run/maint", 0, 1)
    m = map_instance(config, config.vrrp_instances[0], ip_address("10.0.0.5"))
    probes = {t.name: t.item for t in m.probes}
    assert set(probes) == {"nginx", "strict", "maint", "scaled"}
    assert probes["nginx"].weight == -30 and probes["strict"].weight == 0
    assert probes["scaled"].scaled and not probes["maint"].scaled  # value x weight
    assert any("track_file nothere: no such track_file" in n for n in m.notes)
    plan = plan_instance(config, config.vrrp_instances[0], [ip_address("10.0.0.5")])
    specs = {spec.name: spec for _, spec in plan.scripts}
    assert set(specs) == {"process:nginx", "process:strict", "file:maint", "file:scaled"}
    assert specs["process:strict"].probe is not None


def test_one_home_for_each_name_and_rule() -> None:
    """Issue 12's "one place for each keepalived rule", kept: one module named bridge, one
    class named VrrpInstance (the config block; the core's is VrrpMachine), one RiseFall
    (vrrp/tracking.py) that the daemon and the simulator both import."""
    src = Path(__file__).parents[1] / "src" / "hagate"
    files = sorted(src.rglob("*.py"))
    assert [p.relative_to(src).as_posix() for p in files if p.stem == "bridge"] == ["bridge.py"]

    def defining(name: str) -> list[str]:
        pattern = re.compile(rf"^class {name}\b", re.M)
        return [p.relative_to(src).as_posix() for p in files if pattern.search(p.read_text())]

    assert defining("VrrpInstance") == ["config/model.py"]
    assert defining("VrrpMachine") == ["vrrp/machine.py"]
    assert defining("RiseFall") == ["vrrp/tracking.py"]
    for user in ("daemon/scripts.py", "simulate/runner.py"):
        assert "from hagate.vrrp.tracking import" in (src / user).read_text()
        assert "RiseFall" in (src / user).read_text()
