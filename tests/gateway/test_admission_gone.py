"""A parked connection whose client has left is dropped at its turn, never started."""

from __future__ import annotations

import asyncio
import socket
import time

from hagate.gateway.admission import Admission, FairBudget, Ticket, client_gone


def pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    return client, server


def test_client_gone_reads_fin_and_reset_even_behind_unread_bytes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client, server = pair(listener)
        assert not client_gone(server)
        client.sendall(b"\x16\x03\x01 a ClientHello nobody read yet")
        assert not client_gone(server)
        client.close()  # FIN after the bytes: gone, though the bytes are still queued
        deadline = time.monotonic() + 2
        while not client_gone(server) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client_gone(server)
        server.close()
        client, server = pair(listener)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        client.close()  # linger 0: a reset
        deadline = time.monotonic() + 2
        while not client_gone(server) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client_gone(server)
        server.close()
    a, b = socket.socketpair()  # not TCP: counts as present
    assert not client_gone(a)
    a.close()
    b.close()


def test_a_parked_connection_whose_client_left_is_skipped() -> None:
    async def main() -> None:
        adm = Admission(max_total=100, max_per_address=1)
        first = await adm.enter("10.0.0.1", lambda: None)
        assert first is not None
        adm.queued(first)  # busy, not stalled: newcomers of the address are parked
        left = asyncio.ensure_future(adm.enter("10.0.0.1", lambda: None, lambda: True))
        stays = asyncio.ensure_future(adm.enter("10.0.0.1", lambda: None, lambda: False))
        await asyncio.sleep(0)
        assert adm.parked_count() == 2
        adm.release(first)
        assert await asyncio.wait_for(left, 1.0) is None  # its client had gone: not started
        assert isinstance(await asyncio.wait_for(stays, 1.0), Ticket)
        assert adm.abandoned == 1 and adm.parked_count() == 0 and adm.expired == 0
        assert adm.per_address["10.0.0.1"] == 1

    asyncio.run(main())


def test_tickets_just_woken_from_the_park_are_not_taken_for_a_slowloris() -> None:
    async def main() -> None:
        adm = Admission(max_total=100, max_per_address=1)
        first = await adm.enter("10.0.0.1", lambda: None)
        assert first is not None
        adm.queued(first)
        parked = asyncio.ensure_future(adm.enter("10.0.0.1", lambda: None))
        await asyncio.sleep(0)
        adm.release(first)  # wakes the parked one; its task has not run a step yet
        newcomer = asyncio.ensure_future(adm.enter("10.0.0.1", lambda: None))
        woken = await asyncio.wait_for(parked, 1.0)
        assert isinstance(woken, Ticket) and woken.woken
        await asyncio.sleep(0)
        assert not newcomer.done() and adm.refused == 0  # parked behind it, not refused
        woken.paced(FairBudget(4))  # it started, and still no hello: suspect again
        assert await adm.enter("10.0.0.1", lambda: None) is None and adm.refused == 1
        adm.release(woken)
        assert isinstance(await asyncio.wait_for(newcomer, 1.0), Ticket)

    asyncio.run(main())


def test_a_full_table_does_not_evict_a_ticket_just_woken() -> None:
    async def main() -> None:
        adm = Admission(max_total=1, max_per_address=5)
        log: list[str] = []
        first = await adm.enter("10.0.0.1", lambda: log.append("first"))
        assert first is not None
        adm.queued(first)
        parked = asyncio.ensure_future(adm.enter("10.0.0.2", lambda: log.append("woken")))
        await asyncio.sleep(0)
        adm.release(first)
        woken = await asyncio.wait_for(parked, 1.0)
        assert isinstance(woken, Ticket) and woken.woken
        third = asyncio.ensure_future(adm.enter("10.0.0.3", lambda: log.append("third")))
        await asyncio.sleep(0)
        assert log == [] and not third.done()  # parked: the woken one is not a victim
        adm.release(woken)
        assert isinstance(await asyncio.wait_for(third, 1.0), Ticket)

    asyncio.run(main())


def test_only_handshakes_waiting_for_our_cpu_hold_newcomers_back() -> None:
    """Slow clients do not fill the limit: it counts what waits for our CPU."""

    async def main() -> None:
        adm = Admission(max_total=100, max_per_address=100, min_inflight=4)
        waiting_for_clients = [await adm.enter("A", lambda: None) for _ in range(10)]
        assert all(t is not None for t in waiting_for_clients)  # 10 > limit 4: all admitted
        cpu = [await adm.enter("B", lambda: None) for _ in range(4)]
        for t in cpu:
            assert t is not None
            adm.queued(t)  # four wait for our CPU: the limit
        assert adm.cpu_queue() == 4 and len(adm.inflight) == 14
        parked = asyncio.ensure_future(adm.enter("C", lambda: None))
        await asyncio.sleep(0)
        assert not parked.done()
        first = cpu[0]
        assert first is not None
        adm.on_peer(first)  # its step ran: the CPU queue is shorter, the parked one starts
        woken = await asyncio.wait_for(parked, 1.0)
        assert isinstance(woken, Ticket) and adm.cpu_queue() == 4  # 3 queued + 1 woken
        woken.paced(FairBudget(4))
        assert adm.woken_now == 0 and adm.cpu_queue() == 3
        adm.release(woken)
        assert len(adm.inflight) == 14

    asyncio.run(main())
