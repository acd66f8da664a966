"""keepalived.stats / .json formats against files Debian's keepalived 2.2.7 wrote
(tests/daemon/golden/keepalived-2.2.7, from the config in test_lab_monitor.py with priority
100 and weight -20), and atomic writes. No root needed."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hagate.daemon import monitor

GOLDEN = Path(__file__).parent / "golden" / "keepalived-2.2.7"


def _runtime(**counters: int) -> Any:
    base = dict(adverts_in=0, adverts_out=2, become_master=1, release_master=0)
    base |= dict(pri_zero_rcvd=0, pri_zero_sent=0)
    base |= counters
    return SimpleNamespace(name="VI_1", discards=Counter(), **base)


def test_stats_text_is_keepalived_byte_for_byte() -> None:
    expected = (GOLDEN / "keepalived.stats").read_text()
    assert monitor.stats_text([_runtime()]) == expected


def test_discard_reasons_land_in_keepalived_counters() -> None:
    rt = _runtime()
    rt.discards.update({"auth_password_mismatch": 3, "bad_ttl": 2, "too_short": 1})
    rt.discards.update({"length_mismatch": 1, "vrid_mismatch": 9})
    s = monitor.stats_of(rt)
    assert (s["auth_failure"], s["ip_ttl_err"], s["packet_len_err"]) == (3, 2, 2)
    assert sum(s.values()) == 3 + 2 + 2 + 2 + 1  # + advert_sent 2, become_master 1


def test_golden_json_has_the_fields_we_write() -> None:
    golden = json.loads((GOLDEN / "keepalived.json").read_text())[0]
    assert list(golden["stats"]) == list(monitor.STAT_FIELDS)
    assert monitor.STATE_NUMBER[monitor.State.MASTER] == golden["data"]["state"] == 2


def test_default_tmp_dir_follows_keepalived() -> None:
    assert monitor.default_tmp_dir({}) == Path("/tmp")
    assert monitor.default_tmp_dir({"TMPDIR": "relative"}) == Path("/tmp")
    assert monitor.default_tmp_dir({"TMPDIR": "/run/x"}) == Path("/run/x")


def test_write_atomic_replaces_whole_file_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keepalived.stats"
    path.write_text("old")
    monitor.write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["keepalived.stats"]  # no temporary left behind


def test_sockpool_groups_as_keepalived_one_socket_each_side() -> None:
    """keepalived keeps a socket per interface, family and unicast source; hagate's one
    socket per interface and family serves them all, so they share its fd."""
    from ipaddress import ip_address

    sock: Any = SimpleNamespace(fileno=lambda: 7, ifname="eth0", rx_buf_size=4194304)

    def rt(name: str, vrid: int, src: str | None) -> Any:
        plan = SimpleNamespace(
            multicast=src is None,
            source=ip_address(src or "10.1.1.5"),
            family=4,
            params=SimpleNamespace(vrid=vrid),
        )
        return SimpleNamespace(name=name, plan=plan, sock=sock)

    pool = monitor.sockpool([rt("M2", 52, None), rt("U", 60, "10.1.1.5"), rt("M1", 51, None)])
    text = monitor.data_text("r", [], {}, 0.0, 0.0, pool)
    assert text.split("------< VRRP Sockpool >------\n")[1] == (
        " fd_in 7 fd_out = 7\n   Interface = eth0\n   Family = IPv4\n   Protocol = VRRP\n"
        "   Type = Multicast\n   Rx buf size = 4194304\n   VRRP instances\n"
        "     M1 vrid 51\n     M2 vrid 52\n"
        " fd_in 7 fd_out = 7\n   Interface = eth0\n   Family = IPv4\n   Protocol = VRRP\n"
        "   Type = Unicast\n   Address = 10.1.1.5\n   Rx buf size = 4194304\n"
        "   VRRP instances\n     U vrid 60\n"
    )
