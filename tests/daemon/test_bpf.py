"""The kernel receive filter: what passes is what the codec could accept (VRID served here,
length matching the address count); checked on our interpreter and in a real kernel."""

from __future__ import annotations

import struct
import textwrap
from ipaddress import IPv4Address, IPv6Address

import pytest

from hagate.daemon import bpf
from hagate.vrrp.advert import Advert, AuthType
from hagate.vrrp.packet import encode

from .conftest import Pair

SRC4, DST4 = IPv4Address("10.9.0.2"), IPv4Address("224.0.0.18")
SRC6, DST6 = IPv6Address("fe80::2"), IPv6Address("ff02::12")


def ip4(payload: bytes, ihl: int = 5) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 0, 0, 255,
                         112, 0, SRC4.packed, DST4.packed)  # fmt: skip
    return header + b"\0" * (4 * ihl - 20) + payload


def advert(version: int, vrid: int, count: int = 1, v6: bool = False) -> bytes:
    if v6:
        addrs = tuple(IPv6Address(f"fd00::{i + 1}") for i in range(count))
        return encode(Advert(3, vrid, 100, 100, addrs), SRC6, DST6)
    addrs4 = tuple(IPv4Address(f"10.1.1.{i + 1}") for i in range(count))
    auth = AuthType.PASS if version == 2 else AuthType.NONE
    data = b"secret\0\0" if version == 2 else b""
    return encode(Advert(version, vrid, 100, 100, addrs4, auth, data), SRC4, DST4)


@pytest.mark.parametrize("version", [2, 3])
def test_ipv4_keeps_our_vrids_with_consistent_length(version: int) -> None:
    prog = bpf.vrrp_filter(4, {51, 52})
    for vrid in (51, 52):
        for count in (1, 3, 255):
            assert bpf.run(prog, ip4(advert(version, vrid, count))) == bpf.ACCEPT
    assert bpf.run(prog, ip4(advert(version, 51), ihl=6)) == bpf.ACCEPT  # IP options
    assert bpf.run(prog, ip4(advert(version, 53))) == bpf.DROP  # somebody else's VRID
    good = advert(version, 51, 2)
    assert bpf.run(prog, ip4(good[:-1])) == bpf.DROP  # truncated
    assert bpf.run(prog, ip4(good + b"\0")) == bpf.DROP  # padded
    assert bpf.run(prog, ip4(good[:3])) == bpf.DROP  # shorter than a header
    bad_version = bytes([0x51]) + good[1:]
    assert bpf.run(prog, ip4(bad_version)) == bpf.ACCEPT  # the codec counts bad_version


def test_ipv6_keeps_our_vrids_with_consistent_length() -> None:
    prog = bpf.vrrp_filter(6, {7})
    assert bpf.run(prog, advert(3, 7, 2, v6=True)) == bpf.ACCEPT
    assert bpf.run(prog, advert(3, 8, 2, v6=True)) == bpf.DROP
    assert bpf.run(prog, advert(3, 7, 2, v6=True)[:-16]) == bpf.DROP


def test_vrid_limits() -> None:
    prog = bpf.vrrp_filter(4, range(1, 256))
    assert bpf.run(prog, ip4(advert(3, 1))) == bpf.ACCEPT
    assert bpf.run(prog, ip4(advert(3, 255))) == bpf.ACCEPT
    with pytest.raises(ValueError):
        bpf.vrrp_filter(4, [])


_KERNEL = textwrap.dedent(
    """
    import socket, struct, time
    from hagate.daemon.sockets import VrrpSocket
    got = []
    for af in (socket.AF_INET, socket.AF_INET6):
        s = VrrpSocket("eth0", socket.if_nametoindex("eth0"), af)
        s.set_filter(frozenset({51}))
        s.join_multicast()
        got.append(s)
    print("READY", flush=True)
    time.sleep(1.5)
    for s in got:
        seen = []
        while True:
            try:
                seen.append(s._sock.recv(4096))
            except BlockingIOError:
                break
        print(len(seen), s.kernel_drops(), s.receive_buffer() >= 4 * 1024 * 1024)
    """
)

_SEND = textwrap.dedent(
    """
    import socket
    frames = {frames!r}
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("eth0"))
    s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.9.0.1"))
    for f in frames[0]:
        s4.sendto(f, ("224.0.0.18", 0))
    for f in frames[1]:
        s6.sendto(f, ("ff02::12", 0, 0, socket.if_nametoindex("eth0")))
    """
)


def test_filter_in_the_kernel(pair: Pair) -> None:
    import subprocess
    import sys

    rx = subprocess.Popen(
        ["ip", "netns", "exec", pair.b, sys.executable, "-c", _KERNEL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert rx.stdout is not None
        assert rx.stdout.readline().strip() == "READY"
        v4 = [advert(3, 51), advert(2, 51, 2), advert(3, 52), advert(3, 51)[:-1]]
        v6 = [advert(3, 51, 1, v6=True), advert(3, 9, 1, v6=True), advert(3, 51, 2, v6=True)[:-2]]
        pair.run(pair.a, _SEND.format(frames=(v4, v6)))
        out, err = rx.communicate(timeout=10)
    finally:
        rx.kill()
    lines = out.split("\n")
    assert lines[0] == "2 0 True", err  # IPv4: the two VRID-51 adverts with the right length
    assert lines[1] == "1 0 True", err  # IPv6: the one good advert
