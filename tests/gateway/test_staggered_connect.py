"""The agent's dial sends a fresh SYN every stagger while unanswered, so it connects within
about one stagger after a silent gateway comes back (as after a VIP move), instead of waiting
for the kernel's 1 s / 3 s SYN retransmissions. In a lab of its own: SYNs to the listener are
dropped by nftables inside the server's namespace, then let through."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from hagate.net.conn import open_tcp, open_tcp_staggered

pytestmark = pytest.mark.lab

PORT = 7443


@pytest.fixture
def lab():  # type: ignore[no-untyped-def]
    from hagate.lab import Lab, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with Lab.create(prefix="hgsc", nodes={"srv": "10.1.1.5/24", "cli": "10.1.1.20/24"}) as lab:
        yield lab


def _silence(lab, on: bool) -> None:  # type: ignore[no-untyped-def]
    srv = lab.node("srv")
    if on:
        srv.run(["nft", "add", "table", "inet", "hgsc"], check=True)
        chain = "{ type filter hook input priority 0 ; }"
        srv.run(["nft", "add", "chain", "inet", "hgsc", "in", chain], check=True)
        drop = ["tcp", "dport", str(PORT), "drop"]
        srv.run(["nft", "add", "rule", "inet", "hgsc", "in", *drop], check=True)
    else:
        srv.run(["nft", "delete", "table", "inet", "hgsc"], check=True)


def _connect_time(lab, dial) -> float:  # type: ignore[no-untyped-def]
    """Seconds from letting SYNs through until ``dial`` connects."""
    srv, cli = lab.node("srv"), lab.node("cli")
    listener = srv.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("10.1.1.5", PORT))
    listener.listen(16)

    def make(family: int) -> socket.socket:
        return cli.socket(family, socket.SOCK_STREAM)

    async def scenario() -> float:
        _silence(lab, True)
        task = asyncio.ensure_future(dial(make))
        await asyncio.sleep(1.2)  # past the first SYN retransmission (1 s)
        assert not task.done()
        opened = time.monotonic()
        _silence(lab, False)
        sock = await task
        took = time.monotonic() - opened
        sock.close()
        return took

    try:
        return asyncio.run(scenario())
    finally:
        listener.close()


def test_staggered_dial_connects_soon_after_the_gateway_answers(lab) -> None:  # type: ignore[no-untyped-def]
    took = _connect_time(
        lab,
        lambda make: open_tcp_staggered("10.1.1.5", PORT, 10.0, stagger=0.2, make_socket=make),
    )
    assert took < 0.5, took


def test_a_single_attempt_waits_for_the_kernels_retransmission(lab) -> None:  # type: ignore[no-untyped-def]
    async def single(make):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        sock = make(socket.AF_INET)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("10.1.1.5", PORT))
        return sock

    took = _connect_time(lab, single)
    assert took > 0.5, took  # the next SYN goes out 3 s after the first one


def test_refused_is_an_answer_not_silence() -> None:
    async def go() -> float:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there: RST at once
        t = time.monotonic()
        with pytest.raises(ConnectionError):
            await open_tcp_staggered("127.0.0.1", port, 5.0)
        return time.monotonic() - t

    assert asyncio.run(go()) < 0.5
    assert open_tcp  # the plain dial stays for local services
