"""The admin thread's only door into the gateway: every read of its state, and the kick and
unban, run *in* its event loop, one short call each, bounded by LOOP_TIMEOUT.

The loop's dicts are never iterated from another thread: the loop hands over copies (the
device book's records, the access log, the live bans) which the listener's thread then
filters and pages (paging.py). A loop too busy to answer in time makes a 503, never a hang.
The device book's refresh is shared by concurrent requests and spaced out (SharedRefresh), so
that no rate of requests takes more than a fifth of the loop.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hagate.gateway.admin.book import DeviceBook, DeviceRecord

if TYPE_CHECKING:
    from hagate.gateway.accesslog import AccessEntry
    from hagate.gateway.server import Gateway

LOOP_TIMEOUT = 2.0  # a view the loop cannot build within this is a 503, never a hang
T = TypeVar("T")


def in_loop(gw: Gateway, fn: Callable[[], T]) -> T:
    """Run ``fn`` in the gateway's event loop and wait (at most LOOP_TIMEOUT).

    Raises ``concurrent.futures.TimeoutError`` when the loop does not answer in time.
    """
    assert gw.loop is not None
    fut: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)

    gw.loop.call_soon_threadsafe(run)
    return fut.result(LOOP_TIMEOUT)


def records(
    gw: Gateway, book: DeviceBook
) -> tuple[list[DeviceRecord], float, dict[str, dict[str, Any]]]:
    """The book refreshed, the wall clock, and the live bans (as JSON, by device)."""
    assert gw.loop is not None
    loop = gw.loop
    now = time.time()

    def read() -> tuple[list[DeviceRecord], dict[str, dict[str, Any]]]:
        t = loop.time()
        bans = {b.device: b.as_json(t, now) for b in gw.tunnel.bans.expire(t)}
        return book.refresh(gw, now), bans

    recs, bans = in_loop(gw, read)
    return recs, now, bans


Records = tuple[list[DeviceRecord], float, dict[str, dict[str, Any]]]
SHARE = 4.0  # a refresh that took d may be followed by the next one d * SHARE later at soonest
MAX_GAP = 0.5  # s, whatever the last one took (a stalled loop's 2 s timeout included): the
# console's 1 s summary timeout must never be spent waiting here


class SharedRefresh:
    """``records`` for every request of the listener's threads, at most one in the loop at a
    time and at most a 1 / (1 + SHARE) share of the loop's time (20 %): whoever asks, how
    often (a console, a script, any local user when there is no token), the device book's
    O(devices) pass cannot take the event loop from the tunnels.

    Never stale: a request gets a refresh that *started after it arrived*, its own or one that
    another request's started meanwhile (so a session that existed when it asked is in it); it
    may wait up to ``SHARE`` times the last refresh's length for it (~50 ms at 10,000 devices;
    at most ``MAX_GAP``, so above ~25,000 devices the share may pass a fifth: a third at
    200,000).
    """

    def __init__(self, share: float = SHARE) -> None:
        self.share = share
        self.refreshes = 0
        self._cond = threading.Condition()
        self._running = False
        self._started = float("-inf")  # monotonic start of the last finished refresh
        self._next = float("-inf")  # the soonest the next one may start
        self._result: Records | None = None

    def get(self, gw: Gateway, book: DeviceBook) -> Records:
        arrived = time.monotonic()
        with self._cond:
            while True:
                if self._result is not None and self._started >= arrived:
                    return self._result
                wait = self._next - time.monotonic()
                if not self._running and wait <= 0:
                    self._running = True
                    break
                self._cond.wait(None if self._running else wait)
        start = time.monotonic()
        result: Records | None = None
        try:
            result = records(gw, book)
            return result
        finally:
            end = time.monotonic()
            with self._cond:
                self._running = False
                self.refreshes += 1
                if result is not None:
                    self._result, self._started = result, start
                self._next = end + min((end - start) * self.share, MAX_GAP)
                self._cond.notify_all()


def access(gw: Gateway) -> list[AccessEntry]:
    """A copy of the recent access log."""
    return in_loop(gw, lambda: list(gw.access.recent))


def unban(gw: Gateway, device: str) -> bool:
    """Lift the device's ban; whether it had one."""
    return in_loop(gw, lambda: gw.tunnel.bans.lift(device))


def kick(
    gw: Gateway, book: DeviceBook, device: str, ban_s: int | None, by: str
) -> tuple[bool, dict[str, Any] | None]:
    """Ban the device first (if ``ban_s``), then end its session here if it has one: whether
    a session was ended, and the ban (as JSON) or None."""
    assert gw.loop is not None
    loop = gw.loop

    def run() -> tuple[bool, dict[str, Any] | None]:
        banned = None
        if ban_s is not None:
            ban = gw.tunnel.bans.ban(device, ban_s, by, loop.time())
            banned = ban.as_json(loop.time(), time.time())
        session = gw.sessions.get(device)
        if session is None:
            return False, banned
        why = f"session closed by {by}" + (f", banned for {ban_s} s" if ban_s else "")
        gw.end_session(session, error=why)
        book.note_error(device, why.replace("session closed", "kicked"), time.time())
        return True, banned

    return in_loop(gw, run)
