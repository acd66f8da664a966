"""keepalived-exporter's metrics, served by ``--metrics`` next to hagate's own.

Dashboards and alerts built for keepalived read the metrics of keepalived-exporter
(mehdy/keepalived-exporter, the continuation of gen2brain/keepalived_exporter), which scrapes
keepalived's signal dumps. ``hagate vrrp --metrics`` exports the same names, label names,
label values and types from the status snapshot, so those dashboards work unchanged:

* ``keepalived_vrrp_state{iname,intf,vrid,ip_address}``: 0 INIT, 1 BACKUP, 2 MASTER,
  3 FAULT, one series per VIP (``ip_address`` is ``ADDR/LEN``, ``intf`` the VIP's device,
  as the exporter parses keepalived's VIP lines), ``keepalived_vrrp_excluded_state`` for
  virtual_ipaddress_excluded;
* the per-instance counters of keepalived.stats as ``keepalived_*_total{iname,intf,vrid}``;
* ``keepalived_script_status{name}`` (0 BAD, 1 GOOD), ``keepalived_script_state{name}``
  (0 idle), ``keepalived_up``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Snapshot = dict[str, Any]

# keepalived-exporter's VRRPStates: index = value
STATE_VALUE = {"INITIALIZE": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}
COMMON_LABELS = ("iname", "intf", "vrid")
VIP_LABELS = ("iname", "intf", "vrid", "ip_address")
# (metric, keepalived vrrp_stats field or None for garp_delay, HELP as the exporter has it)
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("keepalived_advertisements_received_total", "advert_rcvd", "Advertisements received"),
    ("keepalived_advertisements_sent_total", "advert_sent", "Advertisements sent"),
    ("keepalived_become_master_total", "become_master", "Became master"),
    ("keepalived_release_master_total", "release_master", "Released master"),
    ("keepalived_packet_length_errors_total", "packet_len_err", "Packet length errors"),
    (
        "keepalived_advertisements_interval_errors_total",
        "advert_interval_err",
        "Advertisement interval errors",
    ),
    ("keepalived_ip_ttl_errors_total", "ip_ttl_err", "TTL errors"),
    ("keepalived_invalid_type_received_total", "invalid_type_rcvd", "Invalid type errors"),
    ("keepalived_address_list_errors_total", "addr_list_err", "Address list errors"),
    ("keepalived_authentication_invalid_total", "invalid_authtype", "Authentication invalid"),
    ("keepalived_authentication_mismatch_total", "authtype_mismatch", "Authentication mismatch"),
    ("keepalived_authentication_failure_total", "auth_failure", "Authentication failure"),
    ("keepalived_priority_zero_received_total", "pri_zero_rcvd", "Priority zero received"),
    ("keepalived_priority_zero_sent_total", "pri_zero_sent", "Priority zero sent"),
    ("keepalived_gratuitous_arp_delay_total", "garp_delay", "Gratuitous ARP delay"),
)


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple[object, ...]) -> str:
    return "{" + ",".join(f'{n}="{_esc(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def keepalived_text(snap: Snapshot) -> str:
    """The exposition text keepalived-exporter would produce for this daemon."""
    out: list[str] = []
    insts: list[dict[str, Any]] = snap.get("instances", [])

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    family("keepalived_up", "gauge", "Status")
    out.append("keepalived_up 1")
    for metric, field, help_text in COUNTERS:
        family(metric, "counter", help_text)
        for inst in insts:
            ka = inst.get("keepalived", {})
            value = ka.get("garp_delay", 0) if field == "garp_delay" else ka.get(field, 0)
            common = (inst["name"], inst["interface"], inst["vrid"])
            out.append(f"{metric}{_labels(COMMON_LABELS, common)} {value}")

    def state_family(metric: str, help_text: str, key: str, when_empty: bool) -> None:
        family(metric, "gauge", help_text)
        for inst in insts:
            value = STATE_VALUE.get(inst["state"], 0)
            vips: list[list[str]] = inst.get("keepalived", {}).get(key, [])
            for address, dev in vips:
                labels = _labels(VIP_LABELS, (inst["name"], dev, inst["vrid"], address))
                out.append(f"{metric}{labels} {value}")
            if not vips and when_empty:  # the exporter's rule for an instance without VIPs
                labels = _labels(VIP_LABELS, (inst["name"], inst["interface"], inst["vrid"], ""))
                out.append(f"{metric}{labels} {value}")

    state_family("keepalived_vrrp_state", "State of vrrp", "vips", True)
    state_family(
        "keepalived_vrrp_excluded_state", "State of vrrp with excluded VIP", "evips", False
    )
    scripts: dict[str, str] = {}
    for inst in insts:
        for s in inst.get("scripts", []):
            scripts.setdefault(str(s["name"]), str(s["status"]))
    family("keepalived_script_status", "gauge", "Tracker Script Status")
    for name, status in scripts.items():
        out.append(f'keepalived_script_status{{name="{_esc(name)}"}} {int(status == "ok")}')
    family("keepalived_script_state", "gauge", "Tracker Script State")
    for name in scripts:
        out.append(f'keepalived_script_state{{name="{_esc(name)}"}} 0')
    return "\n".join(out) + "\n"


def metrics_text(snap: Snapshot, hagate_text: Callable[[Snapshot], str]) -> str:
    """What ``--metrics`` serves: hagate's own families, then keepalived-exporter's."""
    return hagate_text(snap) + keepalived_text(snap)
