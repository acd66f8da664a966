"""keepalived.conf model -> core params, receive params, VIPs, notify and script specs."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from hagate.config import load
from hagate.daemon.plan import (
    BridgeError,
    InstancePlan,
    disabled_scripts,
    pick_source,
    plan_instance,
)
from hagate.vrrp.advert import AuthType
from hagate.vrrp.state import State

CONF = """
global_defs {
    vrrp_garp_master_repeat 3
}
vrrp_script chk_httpd {
    script "/bin/sh -c 'exit 0'"
    interval 3
    weight -50
    rise 2
    fall 3
}
vrrp_script chk_up {
    script /bin/true
    weight 20
}
vrrp_script chk_gate {
    script /bin/true
}
vrrp_script chk_missing {
    script /nonexistent/check
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    advert_int 5
    unicast_src_ip 10.1.1.5
    unicast_peer {
        10.1.1.10 min_ttl 250
    }
    authentication {
        auth_type PASS
        auth_pass your_password
    }
    virtual_ipaddress {
        10.1.1.100/24 brd 10.1.1.255 label eth0:vip scope global
        10.1.2.1 dev eth1
    }
    track_script {
        chk_httpd
        chk_up
        chk_gate
        chk_missing
    }
    track_interface {
        eth1 weight -10
    }
    notify_master "/etc/keepalived/master.sh now" nobody
    notify /etc/keepalived/notify.sh
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 0.5
    nopreempt
    virtual_ipaddress {
        fd00::100/64
    }
}
"""


@pytest.fixture
def plans(tmp_path: Path) -> dict[str, InstancePlan]:
    path = tmp_path / "keepalived.conf"
    path.write_text(CONF)
    config, _ = load(path)
    addrs = [ip_address("10.1.1.5"), ip_address("fd00::5"), ip_address("fe80::1")]
    disabled = disabled_scripts(config)
    return {i.name: plan_instance(config, i, addrs, disabled) for i in config.vrrp_instances}


def test_seed_instance_params(plans: dict[str, InstancePlan]) -> None:
    p = plans["VI_1"]
    params = p.params
    assert (params.vrid, params.priority, params.version, params.advert_int) == (51, 255, 2, 5.0)
    assert params.start_state is State.MASTER
    assert params.auth_type is AuthType.PASS and params.auth_data == b"your_pas"
    assert params.primary_address == ip_address("10.1.1.5")
    assert params.garp_master_repeat == 3  # global_defs vrrp_garp_master_repeat
    assert p.destinations == (ip_address("10.1.1.10"),)
    assert not p.multicast
    rx = p.receive
    assert rx.auth_pass == b"your_pas" and rx.unicast_peers[0].min_ttl == 250


def test_vips_keep_label_brd_scope_and_dev(plans: dict[str, InstancePlan]) -> None:
    v1, v2 = plans["VI_1"].vips
    assert (str(v1.address), v1.prefixlen, v1.dev, str(v1.brd), v1.label, v1.scope) == (
        "10.1.1.100", 24, "eth0", "10.1.1.255", "eth0:vip", 0,
    )  # fmt: skip
    assert (str(v2.address), v2.prefixlen, v2.dev) == ("10.1.2.1", 32, "eth1")


def test_tracked_items_and_their_initial_status(plans: dict[str, InstancePlan]) -> None:
    p = plans["VI_1"]
    tracked = {t.name: t for t in p.params.tracked}
    assert set(tracked) == {
        "script chk_httpd",
        "script chk_up",
        "script chk_gate",
        "interface eth1",
        "interface eth0",
    }  # fmt: skip  (chk_missing is disabled, as keepalived disables it)
    # no result yet: no weight applied either way
    assert tracked["script chk_httpd"].adjustment(tracked["script chk_httpd"].initially_ok) == 0
    assert tracked["script chk_up"].adjustment(tracked["script chk_up"].initially_ok) == 0
    assert tracked["interface eth1"].weight == -10
    assert tracked["interface eth0"].weight == 0
    specs = dict(p.scripts)
    httpd = specs["script chk_httpd"]
    assert httpd.argv == ("/bin/sh", "-c", "exit 0")
    assert (httpd.interval, httpd.effective_timeout, httpd.rise, httpd.fall) == (3, 3, 2, 3)


def test_notify_commands(plans: dict[str, InstancePlan]) -> None:
    n = plans["VI_1"].notify
    assert n.master.argv == ("/etc/keepalived/master.sh", "now") and n.master.user == "nobody"
    assert n.generic.argv == ("/etc/keepalived/notify.sh",)
    assert n.backup is None


def test_ipv6_instance_is_v3_multicast_from_link_local(plans: dict[str, InstancePlan]) -> None:
    p = plans["VI_6"]
    assert p.family == 6 and p.params.version == 3
    assert p.source == ip_address("fe80::1")
    assert p.destinations == (ip_address("ff02::12"),) and p.multicast
    assert p.params.nopreempt and p.params.advert_int == 0.5


def test_missing_source_address_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(CONF)
    config, _ = load(path)
    inst = config.instance("VI_6")
    assert inst is not None
    with pytest.raises(BridgeError, match="no IPv6 link-local address"):
        pick_source(inst, 6, [ip_address("10.0.0.1")], [])
    with pytest.raises(BridgeError, match="VI_6"):
        plan_instance(config, inst, [ip_address("10.0.0.1")])
