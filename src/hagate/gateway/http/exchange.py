"""One request forwarded over an upstream and its response brought back: the I/O half of an
exchange (the framing rules are :mod:`hagate.gateway.http.response`'s).

Flow control: the front reads from one side only while the other can take what it writes
(``Conn.drain`` past ``HIGH_WATER`` bytes), so a slow device holds back the upload and a slow
browser holds back the download; no body is ever held whole. A request without a body goes
out in one write and needs no task of its own; a body still arriving is streamed by one.

A request that fails on a reused upstream before any response byte is sent once more on a
fresh one, if it is idempotent and has no body (nginx's ``proxy_next_upstream``). An
``Upgrade`` request becomes a raw :class:`~hagate.net.pipe.Pipe` once the device answers 101.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import httptools

from hagate.gateway.http.deadline import Deadline, Wait
from hagate.gateway.http.fields import IDEMPOTENT
from hagate.gateway.http.host import Route
from hagate.gateway.http.hub import Lease
from hagate.gateway.http.request import END, Request, request_head
from hagate.gateway.http.response import Framing
from hagate.gateway.protocol import ServiceKind
from hagate.gateway.session import StreamError
from hagate.net.conn import Conn
from hagate.net.pipe import Pipe

if TYPE_CHECKING:
    from hagate.gateway.http.connection import UserConn

READ_SIZE = 65536
HIGH_WATER = 256 * 1024  # bytes queued toward one side before the other side is not read


class Retry(Exception):
    """A reused upstream failed before any response byte: try a fresh one."""


class Exchange(Framing):
    """One admitted request: upstream, forward, response, then the upstream back to the pool."""

    __slots__ = ("body_error", "got_bytes", "key", "lease", "result", "route", "strip_auth", "user")

    def __init__(
        self, user: UserConn, req: Request, route: Route, lease: Lease, strip_auth: bool
    ) -> None:
        super().__init__(req)
        self.user = user
        self.route = route
        self.key = (route.device, route.service)
        self.lease = lease
        self.strip_auth = strip_auth
        self.result = "ok"
        self.got_bytes = False  # from the device (a reused upstream that sent some is live)
        self.body_error: str | None = None

    async def fresh_upstream(self) -> Conn:
        """A new upstream from the hub (none pooled, or the pooled one failed)."""
        front = self.user.front
        front.pool.opened += 1
        route = self.route
        return await front.hub.open_upstream(route.device, route.service, ServiceKind.HTTP)

    async def run(self) -> bool:
        """Whether the user connection may carry another request."""
        user = self.user
        req = self.req
        head = request_head(req, user.forwarded, self.strip_auth)
        pool = user.front.pool
        for attempt in (0, 1):
            # A pooled upstream is taken without a coroutine: the keep-alive path.
            conn = pool.take(self.key) if attempt == 0 else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = await self.fresh_upstream()
            except StreamError as exc:
                self.result = exc.reason
                self.status = exc.code
                return await user.refuse(req, exc.code, exc.message)
            user.upstream = conn
            retry = reused and attempt == 0 and not req.body and req.method in IDEMPOTENT
            try:
                keep = await self.forward(conn, head, retry)
            except Retry:
                conn.close()
                continue
            except Deadline as exc:
                conn.close()
                return await self.timed_out(exc.wait)
            except (OSError, EOFError):
                conn.close()
                self.result = "aborted" if user.conn.closed else "device_closed"
                if user.conn.closed or self.sent:
                    return False
                return await self.bad_gateway("the device closed the connection")
            if self.switched:
                return False
            if self.reusable and self.done and self.body_sent and not conn.closed:
                pool.put(self.key, conn)
            else:
                conn.close()
            return keep
        return await self.bad_gateway("the device closed the connection")

    async def bad_gateway(self, message: str) -> bool:
        self.status = 502
        if self.body_error is not None:
            self.result = "bad_request"
            self.status = 400
            await self.user.reply(400, f"bad request: {self.body_error}", close=True)
            return False
        await self.user.reply(502, message, close=True)
        return False

    async def timed_out(self, wait: Wait) -> bool:
        self.result = "timeout"
        if self.sent or self.user.conn.closed:
            return False
        if wait is Wait.BODY:
            self.status = 408
            await self.user.reply(408, "request body not received in time", close=True)
        else:
            self.status = 504
            await self.user.reply(504, "the device did not answer in time", close=True)
        return False

    async def forward(self, conn: Conn, head: bytes, retry: bool) -> bool:
        user = self.user
        deadlines = user.deadlines
        io_timeout = user.front.io_timeout
        counts = self.lease.bytes
        events = user.events
        user_conn = user.conn
        self.parser = httptools.HttpResponseParser(self)
        body_task: asyncio.Task[None] | None = None
        # A request whose body is already parsed goes out in one write; else a task streams it.
        if not self.req.body:  # (its END was queued with its head; gone if this is a retry)
            if events and events[0] is END:
                events.popleft()
            conn.write(head)
            counts[0] += len(head)
        else:
            out = bytearray(head)
            ended = self.collect_body(out)
            conn.write(out)
            counts[0] += len(out)
            if not ended:
                body_task = asyncio.ensure_future(self.send_body(conn))
        first = True  # nothing can be there before the request went out: wait, then read
        try:
            while not self.done:
                deadlines.arm(io_timeout, Wait.DEVICE)
                try:
                    data = await conn.recv_some(READ_SIZE, wait=first)
                    first = False
                except asyncio.CancelledError:
                    if deadlines.timed_out is None:
                        raise
                    raise deadlines.passed() from None
                except OSError:
                    if retry and not self.got_bytes and not user_conn.closed:
                        raise Retry from None
                    raise
                if not data:
                    if retry and not self.got_bytes:
                        raise Retry
                    if self.until_eof:
                        self.eof_ends_body()  # a close-delimited body is complete
                        self.flush()
                        break
                    if self.sent:
                        self.close_user = True  # cut short: the user sees it truncated
                        raise EOFError("device closed in the middle of a response")
                    raise EOFError("device closed")
                self.got_bytes = True
                counts[1] += len(data)
                tail = self.feed_response(data)
                if self.out:
                    self.flush()
                    if len(user_conn.wbuf) > HIGH_WATER:
                        await self.drain_user()
                if tail is not None:
                    await self.switch(conn, tail, body_task)
                    body_task = None
                    return False
        finally:
            deadlines.disarm()
            self.parser = None  # it refers back to self: no cycle left for the collector
            if body_task is not None and not body_task.done():
                body_task.cancel()
                self.close_user = True
                self.reusable = False
        if body_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await body_task
        if self.req.upgrade is not None:
            return False  # the device said no to the upgrade: the rest is not HTTP
        return not self.close_user

    def flush(self) -> None:
        """What the parse produced, to the user in one write."""
        out = self.out
        if out:
            self.sent = True
            self.user.conn.write(out)
            out.clear()

    async def drain_user(self) -> None:
        deadlines = self.user.deadlines
        deadlines.arm(self.user.front.io_timeout, Wait.SEND)
        try:
            await self.user.conn.drain()
        except asyncio.CancelledError:
            if deadlines.timed_out is None:
                raise
            raise deadlines.passed() from None

    def collect_body(self, out: bytearray) -> bool:
        """Frame the queued body events into ``out``; True when the body ended among them."""
        events = self.user.events
        chunked = self.req.chunked
        while events:
            event = events[0]
            if isinstance(event, Request):
                return False  # cannot happen before END; leave it for the next exchange
            events.popleft()
            if event is END:
                if chunked:
                    out += b"0\r\n\r\n"
                self.body_sent = True
                return True
            assert isinstance(event, bytes)
            if chunked:
                out += b"%x\r\n%b\r\n" % (len(event), event)
            else:
                out += event
        return False

    async def send_body(self, conn: Conn) -> None:
        """Stream the rest of the request body, reading from the user only as the device
        takes it (flow control)."""
        user = self.user
        deadlines = user.deadlines
        io_timeout = user.front.io_timeout
        counts = self.lease.bytes
        out = bytearray()
        try:
            while True:
                if len(conn.wbuf) > HIGH_WATER:
                    await conn.drain()
                deadlines.arm(io_timeout, Wait.BODY)
                data = await user.conn.recv_some(READ_SIZE)
                deadlines.arm(io_timeout, Wait.DEVICE)
                if not data:
                    self.body_error = "the upload ended before its body"
                    conn.close()
                    return
                user.feed(data)
                ended = self.collect_body(out)
                if out:
                    conn.write(out)
                    counts[0] += len(out)
                    out.clear()
                if ended:
                    return
                if user.error is not None:
                    self.body_error = user.error
                    conn.close()
                    return
        except (OSError, EOFError):
            conn.close()

    async def switch(self, conn: Conn, tail: bytes, body_task: asyncio.Task[None] | None) -> None:
        """The device answered 101: the two sockets become one raw pipe."""
        user = self.user
        if body_task is not None:
            body_task.cancel()
        await self.drain_user()
        user_rest = (user.upgrade_tail or b"") + bytes(user.conn.rbuf)
        user.conn.rbuf.clear()
        device_rest = tail + bytes(conn.rbuf)
        conn.rbuf.clear()
        lease = self.lease
        counts = lease.bytes

        def closed() -> None:
            lease.end("upgraded", 101)

        user.pipe = Pipe(user.conn.detach(), conn.detach(), on_close=closed, counter=counts)
        user.pipe.start(user_rest, device_rest)
