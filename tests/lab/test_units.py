"""Pure parts of the lab (no root needed): frame and netlink decoding, rule text, input checks."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from hagate.lab import GarpKind, Lab, LabError, firewall, netlink
from hagate.lab.guard import assert_in_netns, in_netns
from hagate.lab.keepalived import Instance, pair
from hagate.lab.watch import parse_garp

MAC = bytes.fromhex("020000000001")


def _arp(spa: str, tpa: str, op: int = 1) -> bytes:
    s, t = socket.inet_aton(spa), socket.inet_aton(tpa)
    return (
        b"\xff" * 6
        + MAC
        + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x800, 6, 4, op)
        + MAC
        + s
        + b"\0" * 6
        + t
    )


def _na(target: str, solicited: bool) -> bytes:
    flags = (0x20 | (0x40 if solicited else 0)).to_bytes(1, "big") + b"\0\0\0"
    icmp = (
        bytes([136, 0, 0, 0]) + flags + ipaddress.IPv6Address(target).packed + bytes([2, 1]) + MAC
    )
    ip6 = b"\x60\0\0\0" + struct.pack("!HBB", len(icmp), 58, 255) + b"\xfe\x80" + b"\0" * 14
    ip6 += ipaddress.IPv6Address("ff02::1").packed
    return b"\x33\x33\0\0\0\x01" + MAC + b"\x86\xdd" + ip6 + icmp


def test_gratuitous_arp_is_recognised() -> None:
    event = parse_garp(_arp("10.1.1.100", "10.1.1.100"), 1.5)
    assert event is not None
    assert (event.t, event.kind, str(event.ip), event.mac) == (
        1.5, GarpKind.ARP, "10.1.1.100", "02:00:00:00:00:01"
    )  # fmt: skip
    assert parse_garp(_arp("10.1.1.100", "10.1.1.100", op=2), 0) is not None  # gratuitous reply


def test_ordinary_arp_and_short_frames_are_ignored() -> None:
    assert parse_garp(_arp("10.1.1.5", "10.1.1.10"), 0) is None
    assert parse_garp(b"\x00" * 10, 0) is None


def test_unsolicited_na_is_recognised_solicited_is_not() -> None:
    event = parse_garp(_na("fd00::100", solicited=False), 2.0)
    assert event is not None and event.kind is GarpKind.NA
    assert str(event.ip) == "fd00::100" and event.mac == "02:00:00:00:00:01"
    assert parse_garp(_na("fd00::100", solicited=True), 2.0) is None


def test_netlink_address_message_decodes() -> None:
    attr = struct.pack("=HH", 8, netlink.IFA_LOCAL) + socket.inet_aton("10.1.1.100")
    body = struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, 7) + attr
    msg = struct.pack("=IHHII", 16 + len(body), netlink.RTM_NEWADDR, 0, 1, 0) + body
    done = struct.pack("=IHHII", 20, netlink.NLMSG_DONE, 0, 1, 0) + b"\0" * 4
    items = list(netlink.parse(msg + done))
    assert items == [netlink.AddrMessage(True, 7, ipaddress.ip_interface("10.1.1.100/24")), 0]


def test_firewall_rules() -> None:
    text = firewall.partition_rules("eth0")
    assert 'hook ingress device "eth0"' in text and 'hook egress device "eth0"' in text
    assert text.count("drop;") == 2
    loss = firewall.loss_rules("eth0", 30, "egress")
    assert "numgen random mod 1000 < 300 drop;" in loss and "hook ingress" not in loss
    with pytest.raises(LabError, match="direction"):
        firewall.loss_rules("eth0", 30, "sideways")
    with pytest.raises(LabError, match="percentage"):
        firewall.loss_rules("eth0", 130, "egress")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "Bad-Prefix"}, "prefix"),
        ({"nodes": {"n/1": "10.0.0.1/24"}}, "node name"),
        ({"nodes": {"n1": "10.0.0.300/24"}}, "not an IPv4"),
        ({"nodes": {}}, "at least one node"),
        ({"ipv6_prefix": "nope"}, "IPv6 prefix"),
    ],
)
def test_bad_lab_input_is_a_lab_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message):
        Lab.create(**kwargs)  # type: ignore[arg-type]


def test_guard_rejects_unknown_and_malformed_names() -> None:
    with pytest.raises(LabError, match="does not exist"):
        assert_in_netns("hgt-0000-nosuchns")
    with pytest.raises(LabError, match="not a valid"):
        assert_in_netns("../etc")
    assert not in_netns("hgt-0000-nosuchns")


def test_keepalived_conf_text() -> None:
    confs = pair(
        version=3,
        advert_int=0.1,
        vips=["10.1.1.100/24"],
        unicast=True,
        nodes=[("n1", "10.1.1.5", 250), ("n2", "10.1.1.10", 200)],
    )
    assert "advert_int 0.1" in confs["n1"] and "version 3" in confs["n1"]
    assert "unicast_src_ip 10.1.1.5" in confs["n1"] and "10.1.1.10\n" in confs["n1"]
    assert "priority 200" in confs["n2"]
    with pytest.raises(LabError, match="whole seconds"):
        Instance("VI_1", 1, 100, ["10.0.0.1/24"], advert_int=0.5, version=2).render()


def test_without_root_labs_are_unavailable_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from hagate.lab import unavailable_reason

    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert unavailable_reason() == "network-namespace labs need root"
    with pytest.raises(LabError, match="need root"):
        Lab.create(prefix="hgt", nodes={"a": "10.9.0.1/24"})
