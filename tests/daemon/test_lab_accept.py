"""no_accept / vrrp_strict in a lab: a non-owner master drops traffic to its VIPs with the
same nftables tables as Debian's keepalived 2.2.7 (``nft list table`` reads the same on
both), ``accept`` given at reload opens them in place, and the tables go at exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import pytest

from hagate.lab import Lab, Node

from .labkit import VIP, instance, log_of, poll, run_dir, start, vrrp_conf, wait_ready, wait_state

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"
VIP6 = "fd00:1::100"
STRICT = "global_defs {\n    vrrp_strict\n}\n"


def conf(vrid: int, extra: str = "") -> str:
    """An IPv4 and an IPv6 instance, both MASTER 200 (not owners), under vrrp_strict."""
    v4 = vrrp_conf(
        top=STRICT, state="MASTER", priority=200, version=3, advert_int=0.1, vrid=vrid,
        instance_extra=extra,
    )  # fmt: skip
    v6 = vrrp_conf(
        state="MASTER", priority=200, version=3, advert_int=0.1, vrid=vrid + 10,
        vips=(f"{VIP6}/64",), name="VI_6", instance_extra=extra,
    )  # fmt: skip
    return v4 + v6


def table(node: Node, family: str) -> str:
    out = node.run(["nft", "list", "table", family, "keepalived"], check=False)
    return out.stdout if out.returncode == 0 else ""


def reach(node: Node, address: str) -> str:
    """'refused' (the VIP's host answered with a RST) or 'dropped' (no answer in 1 s)."""
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, 9), timeout=1)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
        "except OSError:\n"
        "    print('dropped')\n"
    )
    return node.run([sys.executable, "-c", code], check=False).stdout.strip()


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgta", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


def test_no_accept_tables_read_as_keepalived_makes_them(lab: Lab) -> None:
    """keepalived alone on n1 (VRIDs 51/61), hagate alone on n2 (52/62), the same
    settings: each is master of its own routers and lists the same tables."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    lab.start_keepalived(n1, conf(51))
    start(lab, n2, conf(52))
    wait_ready(lab, n2)
    wait_state(lab, n2, "MASTER")
    for fam in ("ip", "ip6"):
        assert poll(lambda f=fam: "elements" in table(n1, f), 10), table(n1, fam)
        assert poll(lambda f=fam: "elements" in table(n2, f), 5), log_of(lab, n2)[-2000:]
        assert table(n2, fam) == table(n1, fam)
    assert f"elements = {{ {VIP} }}" in table(n2, "ip")
    assert f"elements = {{ {VIP6} }}" in table(n2, "ip6")
    n1.terminate()
    n2.terminate()
    assert [table(n, f) for n in (n1, n2) for f in ("ip", "ip6")] == ["", "", "", ""]


def test_no_accept_drops_and_accept_at_reload_opens_in_place(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n2, conf(52))
    wait_ready(lab, n2)
    wait_state(lab, n2, "MASTER")
    assert poll(lambda: n2.has_address(VIP) and "elements" in table(n2, "ip"), 5)
    assert reach(n1, VIP) == "dropped"
    assert reach(n1, N2) == "refused"  # only the VIPs are blocked
    before = instance(lab, n2)["counters"]["transitions"]
    (run_dir(lab, n2) / "keepalived.conf").write_text(conf(52, extra="    accept"))
    os.kill(int((run_dir(lab, n2) / "vrrp.pid").read_text()), signal.SIGHUP)
    assert poll(lambda: "configuration reloaded" in log_of(lab, n2), 5)
    assert poll(lambda: "elements" not in table(n2, "ip"), 5), table(n2, "ip")
    assert reach(n1, VIP) == "refused"
    assert instance(lab, n2)["counters"]["transitions"] == before  # still MASTER
    assert n2.has_address(VIP)
    n2.terminate()
    assert table(n2, "ip") == table(n2, "ip6") == ""
