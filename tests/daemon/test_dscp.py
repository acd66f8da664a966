"""Adverts leave with DSCP CS6 (TOS / traffic class 0xc0), as keepalived's and FRR's do.

Read off the wire: tcpdump in the peer's namespace writes a pcap, scapy dissects it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

if TYPE_CHECKING:
    from tests.daemon.conftest import Pair

PY = sys.executable
_NS = ("ip", "netns", "exec")
_FILTER = "ip proto 112 or ip6 proto 112"

pytestmark = pytest.mark.lab

_SENDER = """
import asyncio, socket
from ipaddress import ip_address
from hagate.daemon.netlink import Netlink
from hagate.daemon.sockets import VrrpSocket
async def main():
    link = await Netlink().link("eth0")
    s4 = VrrpSocket("eth0", link.index, socket.AF_INET)
    s6 = VrrpSocket("eth0", link.index, socket.AF_INET6)
    s4.send(b"v4-mcast", ip_address("10.9.0.1"), ip_address("224.0.0.18"))
    s4.send(b"v4-ucast", ip_address("10.9.0.1"), ip_address("10.9.0.2"))
    s6.send(b"v6-mcast", ip_address("fd09::1"), ip_address("ff02::12"))
    s6.send(b"v6-ucast", ip_address("fd09::1"), ip_address("fd09::2"))
asyncio.run(main())
"""


def test_adverts_carry_dscp_cs6_v4_and_v6(pair: Pair, tmp_path: Path) -> None:
    pcap = tmp_path / "vrrp.pcap"
    cap = subprocess.Popen(
        [*_NS, pair.b, "tcpdump", "-U", "-n", "-i", "eth0", "-w", str(pcap), "-c", "4", _FILTER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stderr is not None
        cap.stderr.readline()  # "listening on eth0 ...": the capture is live
        pair.run(pair.a, textwrap.dedent(_SENDER))
        cap.wait(10)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    packets = rdpcap(str(pcap))
    seen: dict[str, int] = {}
    for pkt in packets:
        if IP in pkt:
            seen[bytes(pkt[IP].payload)[:8].decode()] = pkt[IP].tos
        elif IPv6 in pkt:
            seen[bytes(pkt[IPv6].payload)[:8].decode()] = pkt[IPv6].tc
    assert seen == {"v4-mcast": 0xC0, "v4-ucast": 0xC0, "v6-mcast": 0xC0, "v6-ucast": 0xC0}


_TTL_SENDER = """
import asyncio, socket
from ipaddress import ip_address
from hagate.daemon.netlink import Netlink
from hagate.daemon.sockets import VrrpSocket
async def main():
    link = await Netlink().link("eth0")
    s4 = VrrpSocket("eth0", link.index, socket.AF_INET)
    s6 = VrrpSocket("eth0", link.index, socket.AF_INET6)
    for s, src, dst in ((s4, "10.9.0.1", "10.9.0.2"), (s6, "fd09::1", "fd09::2")):
        s.send_prepared(b"ttl-64", s.prepare(ip_address(src), ip_address(dst), 64))
        s.send(b"ttl-255", ip_address(src), ip_address(dst))
asyncio.run(main())
"""


def test_unicast_ttl_per_destination_v4_and_v6(pair: Pair, tmp_path: Path) -> None:
    """unicast_ttl rides on each send (IP_TTL / IPV6_HOPLIMIT): the socket stays at 255."""
    pcap = tmp_path / "ttl.pcap"
    cap = subprocess.Popen(
        [*_NS, pair.b, "tcpdump", "-U", "-n", "-i", "eth0", "-w", str(pcap), "-c", "4", _FILTER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stderr is not None
        cap.stderr.readline()
        pair.run(pair.a, textwrap.dedent(_TTL_SENDER))
        cap.wait(10)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    seen = set()
    for pkt in rdpcap(str(pcap)):
        if IP in pkt:
            seen.add((4, bytes(pkt[IP].payload).decode(), pkt[IP].ttl))
        elif IPv6 in pkt:
            seen.add((6, bytes(pkt[IPv6].payload).decode(), pkt[IPv6].hlim))
    assert seen == {(4, "ttl-64", 64), (4, "ttl-255", 255), (6, "ttl-64", 64), (6, "ttl-255", 255)}
