"""Netlink VIPs, raw VRRP sockets and GARP frames inside private network namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.daemon.conftest import Pair

PY = sys.executable

pytestmark = pytest.mark.lab


def _code(body: str) -> str:
    return "import asyncio, json, socket\n" + textwrap.dedent(body)


def test_vip_add_remove_and_stale_cleanup(pair: Pair) -> None:
    out = pair.run(
        pair.a,
        _code(
            """
            from ipaddress import ip_address
            from hagate.daemon.netlink import Netlink, Vip
            async def main():
                nl = Netlink()
                v4 = Vip(ip_address("10.9.0.100"), 24, "eth0", brd=ip_address("10.9.0.255"),
                         label="eth0:vip")
                v6 = Vip(ip_address("fd09::100"), 64, "eth0")
                r = [await nl.add_vip(v4), await nl.add_vip(v4), await nl.add_vip(v6)]
                have = [str(a) for a, _ in await nl.addresses("eth0")]
                r.append([await nl.remove_vip(v4), await nl.remove_vip(v4)])
                await nl.add_vip(v4)
                stale = [str(v.address) for v in await nl.remove_stale([v4, v6])]
                after = [str(a) for a, _ in await nl.addresses("eth0")]
                nl.close()
                print(json.dumps([r, have, stale, after]))
            asyncio.run(main())
            """
        ),
    )
    r, have, stale, after = json.loads(out)
    assert r == [True, False, True, [True, False]]
    assert "10.9.0.100" in have and "fd09::100" in have
    assert sorted(stale) == ["10.9.0.100", "fd09::100"]
    assert "10.9.0.100" not in after and "fd09::100" not in after
    # label and brd as configured, IPv6 without DAD (not tentative)
    pair.run(
        pair.a,
        _code(
            """
            from ipaddress import ip_address
            from hagate.daemon.netlink import Netlink, Vip
            async def main():
                nl = Netlink()
                await nl.add_vip(Vip(ip_address("10.9.0.100"), 24, "eth0",
                                     brd=ip_address("10.9.0.255"), label="eth0:vip"))
                await nl.add_vip(Vip(ip_address("fd09::100"), 64, "eth0"))
                nl.close()
            asyncio.run(main())
            """
        ),
    )
    shown = pair.sh(pair.a, "ip", "addr", "show", "dev", "eth0")
    assert "inet 10.9.0.100/24 brd 10.9.0.255 scope global secondary eth0:vip" in shown
    v6line = next(line for line in shown.splitlines() if "fd09::100" in line)
    assert "nodad" in v6line and "tentative" not in v6line


def test_link_monitor_sees_carrier_loss(pair: Pair) -> None:
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pair.a,
            PY,
            "-c",
            _code(
                """
            from hagate.daemon.netlink import LinkMonitor
            async def main():
                seen = []
                mon = LinkMonitor(lambda li: li.name == "eth0" and seen.append(li.usable))
                await mon.start()
                print("ready", flush=True)
                for _ in range(300):
                    if False in seen:
                        break
                    await asyncio.sleep(0.01)
                mon.close()
                print(json.dumps(seen), flush=True)
            asyncio.run(main())
            """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    pair.sh(pair.b, "ip", "link", "set", "eth0", "down")  # the peer: our carrier goes
    seen = json.loads(proc.stdout.readline())
    proc.wait(5)
    assert False in seen


_RECEIVER = """
from hagate.daemon.netlink import Netlink
from hagate.daemon.sockets import VrrpSocket
async def main():
    nl = Netlink()
    link = await nl.link("eth0")
    out = []
    for fam in (socket.AF_INET, socket.AF_INET6):
        s = VrrpSocket("eth0", link.index, fam)
        s.join_multicast()
        s.start(asyncio.get_running_loop(), lambda src, dst, ttl, msg: out.append(
            [fam, str(src), str(dst), ttl, msg[-8:].hex()]))
    print("ready", flush=True)
    for _ in range(300):
        if len(out) >= 4:
            break
        await asyncio.sleep(0.01)
    print(json.dumps(out), flush=True)
asyncio.run(main())
"""

_SENDER = """
from ipaddress import ip_address
from hagate.daemon.netlink import Netlink
from hagate.daemon.sockets import VrrpSocket
async def main():
    nl = Netlink()
    link = await nl.link("eth0")
    s4 = VrrpSocket("eth0", link.index, socket.AF_INET)
    s6 = VrrpSocket("eth0", link.index, socket.AF_INET6)
    s4.send(b"v4-mcast", ip_address("10.9.0.1"), ip_address("224.0.0.18"))
    s4.send(b"v4-ucast", ip_address("10.9.0.1"), ip_address("10.9.0.2"))
    s6.send(b"v6-mcast", ip_address("fd09::1"), ip_address("ff02::12"))
    s6.send(b"v6-ucast", ip_address("fd09::1"), ip_address("fd09::2"))
asyncio.run(main())
"""


def test_raw_sockets_multicast_and_unicast_v4_v6(pair: Pair) -> None:
    recv = subprocess.Popen(
        ["ip", "netns", "exec", pair.b, PY, "-c", _code(_RECEIVER)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert recv.stdout is not None
    assert recv.stdout.readline().strip() == "ready"
    pair.run(pair.a, _code(_SENDER))
    got = json.loads(recv.stdout.readline())
    recv.wait(5)
    by_payload = {bytes.fromhex(p[4]).decode(): p for p in got}
    assert set(by_payload) == {"v4-mcast", "v4-ucast", "v6-mcast", "v6-ucast"}
    for name, (_fam, src, _dst, ttl, _) in by_payload.items():
        assert ttl == 255, name
        assert src in ("10.9.0.1", "fd09::1"), name
    assert by_payload["v4-mcast"][2] == "224.0.0.18"
    assert by_payload["v6-mcast"][2] == "ff02::12"
    assert by_payload["v6-ucast"][2] == "fd09::2"


def test_garp_and_na_reach_the_peer(pair: Pair) -> None:
    cap = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            pair.b,
            "tcpdump",
            "-l",
            "-n",
            "-e",
            "-i",
            "eth0",
            "-c",
            "2",
            "arp or (icmp6 and ip6[40] == 136)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(0.5)
    pair.run(
        pair.a,
        _code(
            """
            from ipaddress import ip_address
            from hagate.daemon.garp import GarpSender
            from hagate.daemon.netlink import Netlink
            async def main():
                link = await Netlink().link("eth0")
                g = GarpSender()
                print(g.send("eth0", link.mac, ip_address("10.9.0.100")),
                      g.send("eth0", link.mac, ip_address("fd09::100")))
            asyncio.run(main())
            """
        ),
    )
    out, _ = cap.communicate(timeout=10)
    assert "Request who-has 10.9.0.100 (ff:ff:ff:ff:ff:ff) tell 10.9.0.100" in out
    assert "neighbor advertisement, tgt is fd09::100" in out
