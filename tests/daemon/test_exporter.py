"""--metrics speaks keepalived-exporter: the same metric names, label names and types as
mehdy/keepalived-exporter (internal/collector/collector.go, fillMetrics), checked on a
snapshot and on a running daemon in a namespace; ``promtool check metrics`` passes (when
Debian's ``prometheus`` package is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hagate.daemon.exporter import keepalived_text, metrics_text
from hagate.daemon.status import prometheus_text
from hagate.lab import Lab

from .labkit import http_get, start, vrrp_conf, wait_ready, wait_state

_COMMON = ("iname", "intf", "vrid")
# keepalived-exporter's metrics: name -> (type, label names). keepalived_exporter_check_script
# _status exists only with its --ka.check-script option, so it is not expected here.
EXPORTER: dict[str, tuple[str, tuple[str, ...]]] = {
    "keepalived_up": ("gauge", ()),
    "keepalived_vrrp_state": ("gauge", (*_COMMON, "ip_address")),
    "keepalived_vrrp_excluded_state": ("gauge", (*_COMMON, "ip_address")),
    "keepalived_gratuitous_arp_delay_total": ("counter", _COMMON),
    "keepalived_advertisements_received_total": ("counter", _COMMON),
    "keepalived_advertisements_sent_total": ("counter", _COMMON),
    "keepalived_become_master_total": ("counter", _COMMON),
    "keepalived_release_master_total": ("counter", _COMMON),
    "keepalived_packet_length_errors_total": ("counter", _COMMON),
    "keepalived_advertisements_interval_errors_total": ("counter", _COMMON),
    "keepalived_ip_ttl_errors_total": ("counter", _COMMON),
    "keepalived_invalid_type_received_total": ("counter", _COMMON),
    "keepalived_address_list_errors_total": ("counter", _COMMON),
    "keepalived_authentication_invalid_total": ("counter", _COMMON),
    "keepalived_authentication_mismatch_total": ("counter", _COMMON),
    "keepalived_authentication_failure_total": ("counter", _COMMON),
    "keepalived_priority_zero_received_total": ("counter", _COMMON),
    "keepalived_priority_zero_sent_total": ("counter", _COMMON),
    "keepalived_script_status": ("gauge", ("name",)),
    "keepalived_script_state": ("gauge", ("name",)),
}
_SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")


def _parse(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            assert m, line
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def _check_against_exporter(text: str) -> list[tuple[str, dict[str, str], float]]:
    types, samples = _parse(text)
    for name, (kind, _labels) in EXPORTER.items():
        assert types.get(name) == kind, name
    for name, labels, _v in samples:
        if name.startswith("keepalived_"):
            assert name in EXPORTER, f"{name} is not a keepalived-exporter metric"
            assert tuple(labels) == EXPORTER[name][1], name
    return samples


def _promtool(text: str) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _snapshot() -> dict[str, object]:
    inst = {
        "name": "VI_1",
        "vrid": 51,
        "interface": "eth0",
        "state": "MASTER",
        "base_priority": 200,
        "effective_priority": 200,
        "last_transition": None,
        "counters": {"adverts_in": 3, "adverts_out": 9, "discards": {"bad_ttl": 1}},
        "scripts": [{"name": "chk_gw", "status": "ok", "weight": -20}],
        "keepalived": {
            "advert_rcvd": 3,
            "advert_sent": 9,
            "become_master": 1,
            "ip_ttl_err": 1,
            "garp_delay": 5.0,
            "vips": [["10.1.1.100/24", "eth0"], ["10.1.2.100/24", "eth1"]],
            "evips": [["fd07::100/64", "eth0"]],
        },
    }
    return {"instances": [inst]}


def test_snapshot_gives_the_exporters_series() -> None:
    samples = _check_against_exporter(keepalived_text(_snapshot()))
    state = {
        s[1]["ip_address"]: (s[1]["intf"], s[2]) for s in samples if s[0] == "keepalived_vrrp_state"
    }
    assert state == {"10.1.1.100/24": ("eth0", 2.0), "10.1.2.100/24": ("eth1", 2.0)}
    excluded = [s for s in samples if s[0] == "keepalived_vrrp_excluded_state"]
    assert [s[1]["ip_address"] for s in excluded] == ["fd07::100/64"]
    by_name = {s[0]: s for s in samples}
    assert by_name["keepalived_advertisements_sent_total"][2] == 9
    assert by_name["keepalived_ip_ttl_errors_total"][2] == 1
    assert by_name["keepalived_script_status"][1:] == ({"name": "chk_gw"}, 1.0)


def test_snapshot_exposition_passes_promtool() -> None:
    _promtool(metrics_text(_snapshot(), lambda s: ""))


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtx", nodes={"n1": "10.1.1.5/24"}) as lab:
        yield lab


@pytest.mark.lab
def test_running_daemon_serves_hagate_and_exporter_metrics(lab: Lab) -> None:
    n1 = lab.node("n1")
    conf = vrrp_conf(state="MASTER", priority=255, vips=("10.1.1.100/24", "10.1.1.101/24"))
    start(lab, n1, conf, "--metrics", "127.0.0.1:9651")
    wait_ready(lab, n1)
    wait_state(lab, n1, "MASTER", 5)
    text = http_get(n1, "http://127.0.0.1:9651/metrics")
    samples = _check_against_exporter(text)
    assert (
        'hagate_vrrp_state{instance_name="VI_1",vrid="51",interface="eth0",state="MASTER"} 1'
        in (text)
    )
    states = {s[1]["ip_address"]: s[2] for s in samples if s[0] == "keepalived_vrrp_state"}
    assert states == {"10.1.1.100/24": 2.0, "10.1.1.101/24": 2.0}
    become = [s for s in samples if s[0] == "keepalived_become_master_total"]
    assert [(s[1], s[2]) for s in become] == [({"iname": "VI_1", "intf": "eth0", "vrid": "51"}, 1)]
    # the status CLI prints the same families
    argv = [sys.executable, "-m", "hagate", "vrrp", "status", "--prometheus"]
    out = n1.run([*argv, "--run-dir", str(lab.node_dir(n1) / "hagate")]).stdout
    assert "keepalived_vrrp_state{" in out and "hagate_vrrp_state{" in out
    _promtool(text)


def test_hagate_families_are_unchanged() -> None:
    text = prometheus_text(_snapshot())
    assert "hagate_vrrp_state" in text and "keepalived_" not in text
