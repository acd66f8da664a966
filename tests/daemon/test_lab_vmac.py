"""use_vmac / vmac_xmit_base in a namespace lab, against Debian's keepalived 2.2.7 as the peer.

n1 runs hagate with ``use_vmac`` (MASTER, 255), n2 keepalived without (BACKUP, 200). Read off
the wire at n2 and the client: adverts from 00:00:5e:00:01:33 (VRID 51) or, with
vmac_xmit_base, from n1's own MAC; gratuitous ARPs from the virtual MAC either way. The VIP
lives on the macvlan ``vrrp.51`` (private mode); keepalived's sysctls are set inside n1 only
and restored, and the macvlan removed, when hagate stops.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from hagate.lab import Lab, Node
from hagate.lab.nsenter import socket_in_netns

from .labkit import VIP, log_of, poll, start, vrrp_conf, wait_ready, wait_state

pytestmark = [pytest.mark.lab, pytest.mark.keepalived]

N1, N2 = "10.1.1.5", "10.1.1.10"
VMAC = "00:00:5e:00:01:33"
ETH_P_IP = 0x0800


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(
        prefix="hgtv", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24", "client": "10.1.1.50/24"}
    ) as lab:
        yield lab


def _advert_macs(node: Node, seconds: float) -> set[str]:
    """Source MACs of the VRRP frames that reach ``node``'s eth0 within ``seconds``."""
    sock = socket_in_netns(node.netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    macs: set[str] = set()
    try:
        sock.bind(("eth0", 0))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            frame = sock.recv(2048)
            if len(frame) > 23 and frame[23] == 112:
                macs.add(frame[6:12].hex(":"))
    finally:
        sock.close()
    return macs


def _link(node: Node, name: str) -> dict[str, object] | None:
    out = node.run(["ip", "-d", "-j", "link", "show", "dev", name], check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def _sysctl(node: Node, dev: str, key: str) -> str:
    return node.run(["cat", f"/proc/sys/net/ipv4/conf/{dev}/{key}"]).stdout.strip()


def _pair(lab: Lab, extra: str) -> tuple[Node, Node]:
    n1, n2 = lab.node("n1"), lab.node("n2")
    lab.start_keepalived(n2, vrrp_conf(state="BACKUP", priority=200))
    start(lab, n1, vrrp_conf(state="MASTER", priority=255, instance_extra=extra))
    wait_ready(lab, n1)
    wait_state(lab, n1, "MASTER", 5)
    assert poll(lambda: f"inet {VIP}/24" in _addrs(n1, "vrrp.51"), 5)
    return n1, n2


def _addrs(node: Node, dev: str) -> str:
    return node.run(["ip", "-4", "addr", "show", "dev", dev], check=False).stdout


@pytest.mark.parametrize("xmit_base", [False, True], ids=["vmac", "vmac_xmit_base"])
def test_use_vmac_with_keepalived_peer(lab: Lab, xmit_base: bool) -> None:
    before = {k: _sysctl(lab.node("n1"), "eth0", k) for k in ("arp_ignore", "arp_filter")}
    watch = lab.node("client").watch_garp()
    extra = "    use_vmac\n" + ("    vmac_xmit_base\n" if xmit_base else "")
    n1, n2 = _pair(lab, extra)
    link = _link(n1, "vrrp.51")
    assert link is not None and link["address"] == VMAC
    info = link["linkinfo"]  # type: ignore[index]
    assert info["info_kind"] == "macvlan" and info["info_data"]["mode"] == "private"
    assert link["link"] == "eth0"
    assert f"inet {VIP}" not in _addrs(n1, "eth0")
    # the switches learn the virtual MAC from the GARPs, in both modes
    watch.wait_for(VIP, mac=VMAC, timeout=5)
    macs = _advert_macs(n2, 2.5)
    assert macs == ({n1.mac} if xmit_base else {VMAC}), macs
    # keepalived's sysctls, inside n1 only
    assert _sysctl(n1, "vrrp.51", "arp_ignore") == "1"
    assert _sysctl(n1, "vrrp.51", "accept_local") == "1"
    assert _sysctl(n1, "vrrp.51", "rp_filter") == "0"
    assert (_sysctl(n1, "eth0", "arp_ignore"), _sysctl(n1, "eth0", "arp_filter")) == ("1", "1")
    # the keepalived backup hears it and stays backup; after a crash it takes over
    time.sleep(0.5)
    assert not n2.has_address(VIP)
    n1.terminate()
    lab.wait_until(lambda: n2.has_address(VIP), 5, what="keepalived takes the VIP")
    assert _link(n1, "vrrp.51") is None, log_of(lab, n1)[-3000:]  # removed at exit
    after = {k: _sysctl(n1, "eth0", k) for k in ("arp_ignore", "arp_filter")}
    assert after == before
