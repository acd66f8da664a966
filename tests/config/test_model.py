"""The typed model: keepalived's defaults, and the cross-keyword rules' effect on values."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hagate.config import load
from hagate.config.model import AuthType, State

CORPUS = Path(__file__).parent / "corpus"


def write(tmp_path: Path, text: str, name: str = "k.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_seed_master_model() -> None:
    config, _ = load(CORPUS / "seed" / "master.conf")
    (vi,) = config.vrrp_instances
    assert vi.name == "VI_1" and vi.state is State.MASTER and vi.interface == "eth0"
    assert (vi.virtual_router_id, vi.priority, vi.advert_int, vi.version) == (51, 255, 5.0, 2)
    assert vi.unicast_src_ip == IPv4Address("10.1.1.5") and vi.unicast_peers == ()
    assert not vi.unicast  # no peers: multicast, as keepalived does
    assert vi.auth_type is AuthType.PASS and vi.auth_pass == "your_pas"
    assert vi.auth_data == b"your_pas"
    (vip,) = vi.virtual_ipaddresses
    assert (vip.address, vip.prefixlen, str(vip.interface)) == (
        IPv4Address("10.1.1.100"),
        24,
        "10.1.1.100/24",
    )
    assert not vi.nopreempt and vi.track_scripts == ()
    httpd = config.script("chk_httpd")
    assert httpd is not None
    assert (httpd.interval, httpd.weight, httpd.rise, httpd.fall) == (3.0, -50, 2, 3)
    assert httpd.timeout == 3.0  # defaults to the interval
    assert httpd.script == "/etc/keepalived/check_httpd.sh"


def test_seed_standby_keeps_nopreempt() -> None:
    config, _ = load(CORPUS / "seed" / "standby.conf")
    (vi,) = config.vrrp_instances
    assert vi.state is State.BACKUP and vi.priority == 200 and vi.nopreempt


def test_defaults_filled_in(tmp_path: Path) -> None:
    path = write(tmp_path, "vrrp_instance A {\n interface eth0\n virtual_router_id 9\n}\n")
    config, findings = load(path)
    (vi,) = config.vrrp_instances
    assert vi.state is State.BACKUP and vi.priority == 100 and vi.advert_int == 1.0
    assert vi.version == 2 and vi.auth_type is AuthType.NONE and vi.auth_data == b""
    assert (vi.garp_master_delay, vi.garp_master_repeat) == (5.0, 5)
    assert (vi.garp_master_refresh, vi.garp_master_refresh_repeat) == (0.0, 1)
    assert vi.down_timer_adverts == 3 and vi.preempt_delay == 0.0
    # RFC 3768 §6.1: Skew_Time = (256 - 100) / 256; Master_Down_Interval = 3 * 1 + skew
    assert abs(vi.skew_time - 156 / 256) < 1e-9
    assert abs(vi.master_down_interval - (3 + 156 / 256)) < 1e-9
    assert config.global_defs.vrrp_mcast_group4 == IPv4Address("224.0.0.18")
    assert [f.keyword for f in findings] == ["vrrp_instance"]  # only "no virtual_ipaddress"


def test_globals_are_instance_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
vrrp_instance A {
    interface eth0
    virtual_router_id 9
    virtual_ipaddress { 10.0.0.1 }
}
global_defs {
    vrrp_version 3
    vrrp_garp_master_delay 2
    vrrp_garp_master_repeat 3
    vrrp_down_timer_adverts 5
    vrrp_check_unicast_src
    script_user nobody nogroup
}
""",
    )
    config, findings = load(path)
    assert not findings
    (vi,) = config.vrrp_instances
    assert vi.version == 3 and vi.garp_master_delay == 2.0 and vi.garp_master_repeat == 3
    assert vi.garp_lower_prio_delay == 2.0 and vi.garp_lower_prio_repeat == 3
    assert vi.down_timer_adverts == 5 and vi.check_unicast_src
    assert (config.global_defs.script_user, config.global_defs.script_group) == (
        "nobody",
        "nogroup",
    )
    # RFC 9568 §6.1: v3 skew time scales with the advertisement interval
    assert abs(vi.master_down_interval - (5 * 1 + 156 / 256)) < 1e-9


def test_cross_keyword_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
vrrp_instance M {
    state MASTER
    interface eth0
    virtual_router_id 1
    nopreempt
    virtual_ipaddress { 10.0.0.1 }
}
vrrp_instance D {
    interface eth0
    virtual_router_id 2
    nopreempt
    preempt_delay 10
    virtual_ipaddress { 10.0.0.2 }
}
vrrp_instance V6 {
    interface eth0
    virtual_router_id 3
    authentication {
        auth_type PASS
        auth_pass x
    }
    virtual_ipaddress { 2001:db8::1/64 }
}
""",
    )
    config, findings = load(path)
    m, d, v6 = config.vrrp_instances
    assert m.priority == 255 and not m.nopreempt  # MASTER without priority: owner
    assert d.nopreempt and d.preempt_delay == 0.0
    assert v6.version == 3 and v6.family == 6 and v6.auth_type is AuthType.NONE
    assert v6.virtual_ipaddresses[0].address == IPv6Address("2001:db8::1")
    messages = " | ".join(f.message for f in findings)
    assert "priority 255" in messages and "preempt_delay" in messages
    assert "VRRPv3 has no authentication" in messages


def test_track_and_peers(tmp_path: Path) -> None:
    config, findings = load(CORPUS / "doc_track.conf")
    assert not findings
    (vi,) = config.vrrp_instances
    (ts,) = vi.track_scripts
    assert (ts.name, ts.weight) == ("chk_proxy", -60)
    assert [(t.name, t.weight) for t in vi.track_interfaces] == [("eth2", 0), ("eth1", -10)]
    assert vi.notify is not None and vi.notify.command == "/bin/true"
    config, _ = load(CORPUS / "doc_unicast.conf")
    (vi,) = config.vrrp_instances
    (peer,) = vi.unicast_peers
    assert (peer.address, peer.min_ttl, peer.max_ttl) == (IPv4Address("10.1.1.10"), 250, 255)
    assert vi.check_unicast_src  # min_ttl/max_ttl turn it on


def test_sync_group_membership() -> None:
    config, findings = load(CORPUS / "doc_sync_group.conf")
    assert not findings
    (group,) = config.vrrp_sync_groups
    assert group.group == ("VI_OUTSIDE", "VI_INSIDE")
    assert group.notify_master is not None
    assert group.notify_master.command == "/etc/keepalived/notify.sh master VG_1"
    assert {i.sync_group for i in config.vrrp_instances} == {"VG_1"}


def test_vip_options() -> None:
    config, _ = load(CORPUS / "doc_vrrp_basic.conf")
    (vi,) = config.vrrp_instances
    plain, dev, full = vi.virtual_ipaddresses
    assert plain.prefixlen == 32 and plain.dev is None
    assert dev.dev == "eth1"
    assert (full.dev, full.label, str(full.brd), full.scope) == (
        "eth2",
        "eth2:1",
        "192.168.200.255",
        "global",
    )
    assert str(full) == "192.168.200.18/24 dev eth2 label eth2:1 brd 192.168.200.255 scope global"
    assert config.global_defs.notification_email == ("admins@example.com", "noc@example.com")
    assert vi.garp_master_delay == 2.0


NOTIFY_AND_GROUP = """
global_defs {
    notify_fifo /run/k.fifo keepalived_script
    vrrp_notify_fifo /run/v.fifo
    vrrp_notify_fifo_script "/usr/bin/reader --flag"
    vrrp_notify_priority_changes
    vrrp_lower_prio_no_advert
    vrrp_startup_delay 5.5
}
vrrp_script chk { script /bin/true; weight -20 }
vrrp_sync_group G1 {
    group { VI_1; VI_2 }
    sync_group_tracking_weight
    notify_priority_changes off
    notify /bin/gnotify
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    higher_prio_send_advert
    notify_master_rx_lower_pri /bin/rxlow
    notify_deleted /bin/gone
    track_script { chk }
    virtual_ipaddress { 10.0.0.1 }
}
vrrp_instance VI_2 {
    interface eth1
    virtual_router_id 2
    lower_prio_no_advert false
    notify_priority_changes
    virtual_ipaddress { 10.0.1.1 }
}
"""


def test_notify_fifo_sync_group_and_split_brain_keywords(tmp_path: Path) -> None:
    config, findings = load(write(tmp_path, NOTIFY_AND_GROUP.replace("; ", "\n")))
    assert [f for f in findings if "not supported" in f.message or "unknown" in f.message] == []
    g = config.global_defs
    assert g.notify_fifo is not None and g.notify_fifo.path == "/run/k.fifo"
    assert g.notify_fifo.user == "keepalived_script"
    assert g.vrrp_notify_fifo is not None and g.vrrp_notify_fifo.path == "/run/v.fifo"
    assert g.vrrp_notify_fifo_script is not None
    assert g.vrrp_notify_fifo_script.command == "/usr/bin/reader --flag"
    assert g.vrrp_startup_delay == 5.5 and g.vrrp_notify_priority_changes
    (group,) = config.vrrp_sync_groups
    assert group.tracking_weight and group.notify_priority_changes is False
    vi1, vi2 = config.vrrp_instances
    assert vi1.higher_prio_send_advert and vi1.lower_prio_no_advert  # global default
    assert not vi2.lower_prio_no_advert  # explicit off wins over global_defs
    assert vi1.notify_master_rx_lower_pri is not None and vi1.notify_deleted
    assert vi1.notify_deleted_script is not None
    # instance, else sync group, else global_defs
    assert not config.notify_priority_changes(vi1) and config.notify_priority_changes(vi2)


def test_global_tracking_is_deprecated_sync_group_tracking_weight(tmp_path: Path) -> None:
    text = NOTIFY_AND_GROUP.replace("sync_group_tracking_weight", "global_tracking")
    config, findings = load(write(tmp_path, text.replace("; ", "\n")))
    assert config.vrrp_sync_groups[0].tracking_weight
    assert any("global_tracking is deprecated" in f.message for f in findings)


def test_check_knows_the_split_brain_keywords_and_names_the_rest(tmp_path: Path) -> None:
    text = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    mcast_dst_ip 224.0.0.99
    lower_prio_no_advert
    higher_prio_send_advert on
    garp_lower_prio_delay 2
    garp_lower_prio_repeat 3
    no_accept
    track_bfd {
        b1
    }
    virtual_ipaddress {
        10.0.0.1
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    unicast_ttl 64
    unicast_fault_no_peer
    accept
    check_unicast_src
    unicast_src_ip 10.0.0.5
    unicast_peer {
        10.0.0.6
    }
    virtual_ipaddress {
        10.0.0.2
    }
}
"""
    config, findings = load(write(tmp_path, text))
    unsupported = [f for f in findings if "not supported" in f.message]
    assert [f.keyword for f in unsupported] == ["track_bfd"]
    vi1, vi2 = config.vrrp_instances
    assert vi1.mcast_dst_ip == IPv4Address("224.0.0.99") and vi1.accept is False
    assert (vi1.garp_lower_prio_delay, vi1.garp_lower_prio_repeat) == (2.0, 3)
    assert vi2.unicast_ttl == 64 and vi2.unicast_fault_no_peer and vi2.accept is True
