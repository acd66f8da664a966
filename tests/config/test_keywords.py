"""`hagate check` knows every vrrp_instance keyword hagate supports and names each keepalived
keyword it does not (issue 12: "knows every keyword it now supports and still names each one
it does not").

Driven by the parser's own tables (INSTANCE_KEYWORDS and the *_UNSUPPORTED sets): a keyword
added to the parser without a sample here fails the first test, so the table stays whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hagate.config import load
from hagate.config.blocks import GLOBAL_UNSUPPORTED, SYNC_GROUP_UNSUPPORTED
from hagate.config.check import check
from hagate.config.instance import INSTANCE_KEYWORDS, INSTANCE_UNSUPPORTED

# One valid use of each supported vrrp_instance keyword (keepalived 2.2.7 syntax).
SAMPLES = {
    "state": "state BACKUP",
    "interface": "interface eth0",
    "virtual_router_id": "virtual_router_id 7",
    "priority": "priority 150",
    "advert_int": "advert_int 2",
    "version": "version 2",
    "mcast_src_ip": "mcast_src_ip 10.0.0.5",
    "unicast_src_ip": "unicast_src_ip 10.0.0.5",
    "unicast_peer": "unicast_peer {\n        10.0.0.6\n    }",
    "check_unicast_src": "check_unicast_src",
    "authentication": "authentication {\n        auth_type PASS\n        auth_pass secret\n    }",
    # (listed for the "belongs inside a vrrp_instance" hint; keepalived reads them only in
    # the authentication block)
    "auth_type": "authentication {\n        auth_type PASS\n    }",
    "auth_pass": "authentication {\n        auth_pass secret\n    }",
    "virtual_ipaddress": "virtual_ipaddress {\n        10.0.0.101/24\n    }",
    "virtual_ipaddress_excluded": "virtual_ipaddress_excluded {\n        10.0.0.102/24\n    }",
    "nopreempt": "nopreempt",
    "preempt": "preempt",
    "preempt_delay": "preempt_delay 5",
    "track_script": "track_script {\n        chk\n    }",
    "track_interface": "track_interface {\n        eth1 weight 10\n    }",
    "garp_master_delay": "garp_master_delay 3",
    "garp_master_repeat": "garp_master_repeat 2",
    "garp_master_refresh": "garp_master_refresh 60",
    "garp_master_refresh_repeat": "garp_master_refresh_repeat 2",
    "garp_lower_prio_delay": "garp_lower_prio_delay 2",
    "garp_lower_prio_repeat": "garp_lower_prio_repeat 3",
    "down_timer_adverts": "down_timer_adverts 5",
    "v3_checksum_as_v2": "v3_checksum_as_v2",
    "lower_prio_no_advert": "lower_prio_no_advert",
    "higher_prio_send_advert": "higher_prio_send_advert",
    "notify_master_rx_lower_pri": "notify_master_rx_lower_pri /bin/true",
    "notify_priority_changes": "notify_priority_changes",
    "notify_deleted": "notify_deleted",
    "mcast_dst_ip": "mcast_dst_ip 224.0.0.99",
    "unicast_ttl": "unicast_ttl 64",
    "track_process": "track_process {\n        web\n    }",
    "track_file": "track_file {\n        flag\n    }",
    "unicast_fault_no_peer": "unicast_fault_no_peer",
    "accept": "accept",
    "no_accept": "no_accept",
    "use_vmac": "use_vmac",
    "vmac_xmit_base": "vmac_xmit_base",
    "virtual_routes": "virtual_routes {\n        192.168.9.0/24 via 10.0.0.1\n    }",
    "virtual_rules": "virtual_rules {\n        from 10.0.0.101 table 100\n    }",
    "notify_master": "notify_master /bin/true",
    "notify_backup": "notify_backup /bin/true",
    "notify_fault": "notify_fault /bin/true",
    "notify_stop": "notify_stop /bin/true",
    "notify": "notify /bin/true",
}

HEAD = """vrrp_script chk {
    script /bin/true
}
vrrp_track_process web {
    process nginx
}
vrrp_track_file flag {
    file /tmp/hagate-keyword-test-flag
}
"""


def _instance(line: str, name: str = "VI_1") -> str:
    base = {
        "interface": "interface eth0",
        "virtual_router_id": "virtual_router_id 1",
        "virtual_ipaddress": "virtual_ipaddress {\n        10.0.0.100/24\n    }",
    }
    word = line.split()[0]
    body = [text for key, text in base.items() if key != word]
    return f"vrrp_instance {name} {{\n    " + "\n    ".join([*body, line]) + "\n}\n"


def _complaints(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    _, findings = load(path)
    return [
        (f.keyword, f.message)
        for f in findings
        if "not supported" in f.message or "unknown" in f.message
    ]


def test_every_supported_instance_keyword_has_a_sample() -> None:
    assert set(SAMPLES) == set(INSTANCE_KEYWORDS)


@pytest.mark.parametrize("keyword", sorted(INSTANCE_KEYWORDS))
def test_check_knows_each_supported_instance_keyword(tmp_path: Path, keyword: str) -> None:
    assert _complaints(tmp_path, HEAD + _instance(SAMPLES[keyword])) == []


@pytest.mark.parametrize("keyword", sorted(INSTANCE_UNSUPPORTED))
def test_check_names_each_unsupported_instance_keyword(tmp_path: Path, keyword: str) -> None:
    found = _complaints(tmp_path, _instance(f"{keyword} x"))
    assert [k for k, m in found if "not supported" in m] == [keyword]


@pytest.mark.parametrize("keyword", sorted(GLOBAL_UNSUPPORTED))
def test_check_names_each_unsupported_global_keyword(tmp_path: Path, keyword: str) -> None:
    found = _complaints(
        tmp_path, f"global_defs {{\n    {keyword} x\n}}\n" + _instance("state BACKUP")
    )
    assert [k for k, m in found if "not supported" in m] == [keyword]


@pytest.mark.parametrize("keyword", sorted(SYNC_GROUP_UNSUPPORTED))
def test_check_names_each_unsupported_sync_group_keyword(tmp_path: Path, keyword: str) -> None:
    text = (
        "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n"
        f"    {keyword} x\n}}\n"
        + _instance("state BACKUP")
        + _instance("virtual_router_id 2", "VI_2").replace("10.0.0.100", "10.0.0.200")
    )
    found = _complaints(tmp_path, text)
    assert [k for k, m in found if "not supported" in m] == [keyword]


def test_an_unknown_keyword_is_named_as_unknown(tmp_path: Path) -> None:
    assert _complaints(tmp_path, _instance("vrrp_delay_after_boot 5")) == [
        ("vrrp_delay_after_boot", "unknown keyword in vrrp_instance; ignored")
    ]


def test_auth_type_ah_is_a_clear_not_supported_error(tmp_path: Path) -> None:
    """keepalived runs AH over VRRPv2; hagate does not, and says so at check time (exit 1,
    a hagate-only error: keepalived -t accepts the file) as its daemon does at start."""
    auth = "authentication {\n        auth_type AH\n        auth_pass secret\n    }"
    path = tmp_path / "keepalived.conf"
    path.write_text(_instance(auth))
    report = check([path])
    (finding,) = report.findings
    assert (finding.keyword, finding.line) == ("auth_type", 7)
    assert "auth_type AH is not supported by hagate" in finding.message
    assert report.exit_code == 1
    # VRRPv3 has no authentication at all: that finding, not this one
    path.write_text(_instance(auth).replace("interface eth0", "interface eth0\n    version 3"))
    assert [f.message for f in check([path]).findings] == [
        "(VI_1) VRRPv3 has no authentication (RFC 9568); auth_type is ignored"
    ]
