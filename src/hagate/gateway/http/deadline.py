"""One lazy deadline per user connection, whatever it is waiting for (a head, a body, the
device, the user taking a download).

``arm()`` on every wait would be a timer heap operation per read; here the timer is moved
only when a deadline comes *earlier*, and when it fires early it re-arms itself at the
current deadline. A deadline that passes cancels the connection's task; the code that was
waiting turns the cancellation back into :class:`Deadline` with :meth:`Deadlines.passed`.
"""

from __future__ import annotations

import asyncio
import enum


class Wait(enum.Enum):
    """What a connection waits for: decides the answer when the deadline passes."""

    IDLE = "idle"  # the next request of a keep-alive connection: close quietly
    HEAD = "head"  # the rest of a request head: 408
    BODY = "body"  # the rest of a request body: 408
    DEVICE = "device"  # the device's response: 504
    SEND = "send"  # the user reading what was sent: close


class Deadline(Exception):
    """Raised in place of the CancelledError of a deadline (so callers can tell them apart)."""

    def __init__(self, wait: Wait) -> None:
        super().__init__(wait.value)
        self.wait = wait


class Deadlines:
    """The deadline of one connection's task (the task that calls ``arm``)."""

    __slots__ = ("_timer", "deadline", "kind", "loop", "task", "timed_out")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.task = asyncio.current_task()
        self.deadline = 0.0
        self.kind: Wait | None = None  # None: nothing is waited for
        self.timed_out: Wait | None = None  # set when a deadline passed (the task is cancelled)
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, delay: float, kind: Wait) -> None:
        self.deadline = self.loop.time() + delay
        self.kind = kind
        timer = self._timer
        if timer is None or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self.deadline, self._on_timer)

    def disarm(self) -> None:
        self.kind = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.kind is None:
            return
        if self.loop.time() < self.deadline:
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        self.timed_out = self.kind
        self.kind = None
        if self.task is not None:
            self.task.cancel()

    def passed(self) -> Deadline:
        """In an ``except CancelledError`` after ``timed_out`` was set: the deadline as an
        ordinary exception (the cancellation is taken back)."""
        if self.task is not None:
            self.task.uncancel()
        return Deadline(self.timed_out or Wait.SEND)

    def close(self) -> None:
        self.kind = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
