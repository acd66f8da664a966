"""Handshake admission in a reconnection storm vs a flood (hagate.gateway.admission, no I/O).

A storm: thousands of honest agents behind a few addresses, their handshakes queued for the
gateway's CPU. They are parked (not reset) beyond the per-address cap and never evicted
while they wait for us. A flood: connections that stall on the client side; those are what
eviction and the per-address refusal are for.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

from hagate.gateway.admission import Admission, FairBudget, Ticket


def closer(log: list[str], name: str):  # type: ignore[no-untyped-def]
    return lambda: log.append(name)


def test_stalled_address_over_its_cap_is_refused() -> None:
    async def main() -> None:
        adm = Admission(max_total=100, max_per_address=2)
        a = await adm.enter("10.0.0.1", lambda: None)
        b = await adm.enter("10.0.0.1", lambda: None)
        assert a is not None and b is not None  # both wait for their client (stalled)
        assert await adm.enter("10.0.0.1", lambda: None) is None
        assert adm.refused == 1

    asyncio.run(main())


def test_busy_address_over_its_cap_is_parked_then_started() -> None:
    async def main() -> None:
        adm = Admission(max_total=100, max_per_address=2)
        a = await adm.enter("10.0.0.1", lambda: None)
        b = await adm.enter("10.0.0.1", lambda: None)
        assert a is not None and b is not None
        adm.queued(a)  # a waits for our CPU: the address is busy, not stalled
        parked = asyncio.ensure_future(adm.enter("10.0.0.1", lambda: None))
        await asyncio.sleep(0)
        assert not parked.done() and adm.parked_count() == 1 and adm.refused == 0
        adm.release(b)
        ticket = await asyncio.wait_for(parked, 1.0)
        assert isinstance(ticket, Ticket) and adm.parked_count() == 0
        assert adm.per_address["10.0.0.1"] == 2

    asyncio.run(main())


def test_full_table_evicts_a_stalled_handshake_never_one_queued_for_us() -> None:
    async def main() -> None:
        adm = Admission(max_total=3, max_per_address=10)
        log: list[str] = []
        t = [await adm.enter(f"10.0.0.{i}", closer(log, f"t{i}")) for i in range(3)]
        assert all(x is not None for x in t)
        for x in t[:2]:
            assert x is not None
            adm.queued(x)  # t0, t1 queued for our CPU; t2 waits for its client
        late = await adm.enter("10.0.0.9", lambda: None)
        assert late is not None and log == ["t2"] and adm.evicted == 1
        # now all three wait for our CPU: a newcomer is parked, nobody evicted
        assert late is not None
        adm.queued(late)
        parked = asyncio.ensure_future(adm.enter("10.0.0.8", lambda: None))
        await asyncio.sleep(0)
        assert not parked.done() and adm.evicted == 1
        assert t[0] is not None
        adm.on_peer(t[0])
        adm.release(t[0])  # finished: the parked one starts
        assert await asyncio.wait_for(parked, 1.0) is not None

    asyncio.run(main())


def test_parked_connections_start_round_robin_over_addresses() -> None:
    async def main() -> None:
        adm = Admission(max_total=1, max_per_address=1)
        first = await adm.enter("A", lambda: None)
        assert first is not None
        adm.queued(first)
        order: list[str] = []

        async def one(peer: str) -> None:
            ticket = await adm.enter(peer, lambda: None)
            assert ticket is not None
            order.append(peer)
            adm.queued(ticket)
            await asyncio.sleep(0)
            adm.release(ticket)

        tasks = [asyncio.ensure_future(one(p)) for p in ["A", "A", "A", "B", "C"]]
        await asyncio.sleep(0)
        assert adm.parked_count() == 5
        adm.release(first)
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert order[:3] == ["A", "B", "C"]  # one of A's, then the other addresses

    asyncio.run(main())


def test_parked_connection_cancelled_leaves_the_queue() -> None:
    async def main() -> None:
        adm = Admission(max_total=1, max_per_address=5)
        first = await adm.enter("A", lambda: None)
        assert first is not None
        adm.queued(first)
        parked = asyncio.ensure_future(adm.enter("B", lambda: None))
        await asyncio.sleep(0)
        parked.cancel()
        await asyncio.sleep(0)
        assert adm.parked_count() == 0 and not adm.parked

    asyncio.run(main())


def test_paced_budget_marks_where_a_handshake_waits() -> None:
    async def main() -> None:
        adm = Admission(max_total=10, max_per_address=10)
        budget = FairBudget(per_turn=1)
        t1 = await adm.enter("A", lambda: None)
        t2 = await adm.enter("A", lambda: None)
        assert t1 is not None and t2 is not None
        # Both ask in one loop turn; the budget gives one step per turn: t2 waits for our CPU.
        first = asyncio.ensure_future(t1.paced(budget).acquire())
        waiting = asyncio.ensure_future(t2.paced(budget).acquire())
        await asyncio.sleep(0)
        assert first.done() and t1.on_peer and id(t1) in adm.stalled
        assert not t2.on_peer and adm.busy_of["A"] == 1 and id(t2) not in adm.stalled
        await asyncio.wait_for(waiting, 1.0)
        assert t2.on_peer and not adm.busy_of

    asyncio.run(main())


class _Answered:
    """Stands for an SSL socket whose handshake got past the client's hello."""

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)

    def version(self) -> str | None:
        return None  # not finished


def answered(ticket: Ticket | None) -> Ticket:
    assert ticket is not None
    ticket.tls = cast(ssl.SSLSocket, _Answered())
    return ticket


def test_slow_clients_that_said_hello_are_parked_not_refused_or_evicted() -> None:
    """A fleet's own CPU is the bottleneck: its handshakes wait on it, after hello."""

    async def main() -> None:
        adm = Admission(max_total=3, max_per_address=2, stall_grace=60.0)
        log: list[str] = []
        a = answered(await adm.enter("fleet", closer(log, "a")))
        answered(await adm.enter("fleet", closer(log, "b")))
        over_cap = asyncio.ensure_future(adm.enter("fleet", lambda: None))
        await asyncio.sleep(0)
        assert not over_cap.done() and adm.refused == 0  # parked: its clients are real
        answered(await adm.enter("other", closer(log, "c")))
        full = asyncio.ensure_future(adm.enter("third", lambda: None))
        await asyncio.sleep(0)
        assert not full.done() and log == [] and adm.evicted == 0  # none evicted: parked
        adm.release(a)
        assert await asyncio.wait_for(over_cap, 1.0) is not None  # the fleet's turn first
        assert not full.done()

    asyncio.run(main())


def test_a_handshake_stalled_past_the_grace_is_evicted_even_after_hello() -> None:
    async def main() -> None:
        adm = Admission(max_total=1, max_per_address=5, stall_grace=0.05)
        log: list[str] = []
        answered(await adm.enter("A", closer(log, "a")))
        await asyncio.sleep(0.1)
        assert await adm.enter("B", lambda: None) is not None
        assert log == ["a"] and adm.evicted == 1

    asyncio.run(main())


def test_a_connection_parked_too_long_is_closed_unstarted() -> None:
    """Its client would time out before the handshake is done: spend the CPU elsewhere."""

    async def main() -> None:
        adm = Admission(max_total=1, max_per_address=5, max_park_s=0.02)
        first = await adm.enter("A", lambda: None)
        assert first is not None
        adm.queued(first)
        parked = asyncio.ensure_future(adm.enter("B", lambda: None))
        await asyncio.sleep(0.05)
        adm.release(first)
        assert await asyncio.wait_for(parked, 1.0) is None
        assert adm.expired == 1 and not adm.inflight

    asyncio.run(main())


def test_in_progress_follows_the_completion_rate() -> None:
    """Little's law: two seconds' worth of handshakes in progress, the rest parked."""

    async def main() -> None:
        adm = Admission(max_total=1000, max_per_address=1000, min_inflight=4, target_s=1.0)
        assert adm.limit() == 4  # nothing completed yet: the floor
        tickets = [await adm.enter("A", lambda: None) for _ in range(4)]
        for t in tickets:
            assert t is not None
            adm.queued(t)  # all four wait for our CPU
        parked = asyncio.ensure_future(adm.enter("B", lambda: None))
        await asyncio.sleep(0)
        assert not parked.done()  # at the limit and we are the bottleneck: parked
        adm.rate = 50.0  # fifty a second complete: a hundred (two seconds' worth) in progress
        assert adm.limit() == 100
        done = tickets[0]
        assert done is not None
        adm.on_peer(done)
        adm.release(done)
        assert await asyncio.wait_for(parked, 1.0) is not None
        assert Admission(max_total=10, min_inflight=64).limit() == 10  # never over max_total

    asyncio.run(main())
