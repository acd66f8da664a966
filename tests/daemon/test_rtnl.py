"""The lean rtnetlink client: message framing and attributes (no root), and real requests
and events inside a private namespace (root)."""

from __future__ import annotations

import json
import socket
import struct
import textwrap
from typing import TYPE_CHECKING

import pytest

from hagate.daemon import rtnl

if TYPE_CHECKING:
    from tests.daemon.conftest import Pair


def _msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body
    return raw + b"\0" * (-len(raw) % 4)


def test_split_and_attributes_round_trip() -> None:
    body = rtnl.ifaddr(socket.AF_INET, 24, 0, 0, 7)
    body += rtnl.attr(rtnl.IFA_LOCAL, bytes([10, 0, 0, 1])) + rtnl.attr(rtnl.IFA_LABEL, b"e0\0")
    data = _msg(rtnl.RTM_NEWADDR, 0, 5, body) + _msg(rtnl.NLMSG_DONE, 0, 5, b"\0" * 4)
    msgs = list(rtnl.split(data))
    assert [m.type for m in msgs] == [rtnl.RTM_NEWADDR, rtnl.NLMSG_DONE]
    addr = rtnl.parse_addr(msgs[0].body)
    assert (addr.family, addr.prefixlen, addr.index, addr.address) == (2, 24, 7, b"\n\0\0\1")


def test_truncated_and_bogus_lengths_are_dropped_not_raised() -> None:
    good = _msg(rtnl.RTM_NEWLINK, 0, 1, struct.pack("=BxHiII", 0, 1, 3, 0x41, 0))
    assert len(list(rtnl.split(good[:-1]))) == 0  # length runs past the datagram
    assert list(rtnl.split(struct.pack("=IHHII", 3, 0, 0, 0, 0))) == []  # length < header
    # an attribute that claims more than is there ends the attribute list
    body = struct.pack("=BxHiII", 0, 1, 3, 0x41, 0) + struct.pack("=HH", 200, rtnl.IFLA_IFNAME)
    link = rtnl.parse_link(body + b"eth0")
    assert (link.index, link.flags, link.name, link.mtu) == (3, 0x41, None, None)


_EVENTS = """
import asyncio, json, subprocess
from hagate.daemon.netlink import LinkMonitor, Netlink
async def main():
    nl = Netlink()
    links = await nl.links()
    seen, gone = [], []
    mon = LinkMonitor(lambda li: seen.append([li.name, li.usable]),
                      lambda g: gone.append(str(g.address)))
    await mon.start()
    subprocess.run(["ip", "addr", "add", "10.9.0.77/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "addr", "del", "10.9.0.77/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "link", "set", "eth0", "down"], check=True)
    for _ in range(200):
        if gone and ["eth0", False] in seen:
            break
        await asyncio.sleep(0.01)
    mon.close()
    nl.close()
    print(json.dumps({"lo": links["lo"].index, "eth0_mtu": links["eth0"].mtu,
                      "mac": links["eth0"].mac.hex(), "seen": seen, "gone": gone}))
asyncio.run(main())
"""


@pytest.mark.lab
def test_dump_and_events_in_a_namespace(pair: Pair) -> None:
    out = json.loads(pair.run(pair.a, textwrap.dedent(_EVENTS)))
    assert out["lo"] == 1 and out["eth0_mtu"] == 1500 and len(out["mac"]) == 12
    assert "10.9.0.77" in out["gone"]
    assert ["eth0", False] in out["seen"]


@pytest.mark.lab
def test_kernel_errors_come_back_as_errno(pair: Pair) -> None:
    code = """
    import errno, socket
    from hagate.daemon import rtnl
    nl = rtnl.Rtnl()
    body = rtnl.ifaddr(socket.AF_INET, 24, 0, 0, 999999)
    body += rtnl.attr(rtnl.IFA_LOCAL, bytes([10, 0, 0, 1]))
    try:
        nl.request(rtnl.RTM_NEWADDR, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL, body)
    except rtnl.RtnlError as exc:
        print(errno.errorcode[exc.errno])
    """
    assert pair.run(pair.a, textwrap.dedent(code)).strip() == "ENODEV"
