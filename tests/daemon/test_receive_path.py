"""The socket's batched IPv4 receive path agrees with the codec's decode_ip on any input.

A real raw socket is opened on ``lo`` (nothing is sent) and its kernel socket swapped for
a fake that hands out queued datagrams, so the drain loop runs exactly as in the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.daemon.sockets import VrrpSocket
from hagate.vrrp.packet import PacketError, decode_ip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")

# VRRPv2 PASS advert 10.1.1.5 -> 224.0.0.18 (as in tests/vrrp/test_packet.py)
ADVERT = bytes.fromhex("2133fa0201015f7f0a0101640a0101657365637265743132")
IP_HEADER = bytes.fromhex("45c0002c00010000ff70cf880a010105e0000012")
PACKET = IP_HEADER + ADVERT


class FakeSock:
    """recv() from a queue, then EAGAIN, as a non-blocking socket does."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)

    def recv(self, size: int) -> bytes:
        if not self.packets:
            raise BlockingIOError
        return self.packets.pop(0)[:size]


Seen = list[tuple[str, object]]


@pytest.fixture
def vsock() -> Iterator[VrrpSocket]:
    s = VrrpSocket("lo", socket.if_nametoindex("lo"), socket.AF_INET)
    real = s._sock
    yield s
    real.close()


def drain(s: VrrpSocket, packets: list[bytes], fail_on: bytes | None = None) -> Seen:
    seen: Seen = []

    def on_packet(src: object, dst: object, ttl: int | None, payload: bytes) -> None:
        if payload == fail_on:
            raise RuntimeError("handler bug")
        seen.append(("packet", (src, dst, ttl, payload)))

    s._sock = FakeSock(packets)  # type: ignore[assignment]
    s._reader = on_packet
    s._on_discard = lambda reason: seen.append(("discard", reason))
    s._drain()
    return seen


def expected(packet: bytes) -> tuple[str, object]:
    try:
        return ("packet", tuple(decode_ip(packet)))
    except PacketError as exc:
        return ("discard", exc.reason.value)


def test_one_wakeup_reads_every_queued_packet(vsock: VrrpSocket) -> None:
    seen = drain(vsock, [PACKET] * 5)
    assert len(seen) == 5
    src, dst, ttl, payload = seen[0][1]  # type: ignore[misc]
    assert (src, dst, ttl, payload) == (
        IPv4Address("10.1.1.5"),
        IPv4Address("224.0.0.18"),
        255,
        ADVERT,
    )
    assert seen[1][1][0] is src  # address objects are reused, not rebuilt per packet


def test_padding_options_and_junk_match_decode_ip(vsock: VrrpSocket) -> None:
    with_options = b"\x46\xc0\x00\x30" + IP_HEADER[4:] + bytes(4)  # IHL 6, length 48
    fragment = IP_HEADER[:6] + b"\x20\x00" + IP_HEADER[8:] + ADVERT
    tcp = IP_HEADER[:9] + b"\x06" + IP_HEADER[10:] + ADVERT
    cases = [PACKET + bytes(16), with_options + ADVERT, fragment, tcp, PACKET[:19], b""]
    assert drain(vsock, cases) == [expected(p) for p in cases]


def test_a_handler_error_does_not_stop_the_reader(vsock: VrrpSocket) -> None:
    other = IP_HEADER + ADVERT[:-1] + b"3"
    seen = drain(vsock, [other, PACKET], fail_on=other[20:])
    assert seen == [expected(PACKET)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.builds(lambda h, tail: h + tail, st.just(IP_HEADER), st.binary(max_size=40)),
            st.builds(
                lambda i, b: PACKET[:i] + bytes([b]) + PACKET[i + 1 :],
                st.integers(0, 19),
                st.integers(0, 255),
            ),
        ),
        max_size=4,
    )
)
def test_fast_path_equals_decode_ip(packets: list[bytes]) -> None:
    s = VrrpSocket("lo", socket.if_nametoindex("lo"), socket.AF_INET)
    real = s._sock
    try:
        assert drain(s, packets) == [expected(p) for p in packets]
    finally:
        real.close()
