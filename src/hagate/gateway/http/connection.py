"""One user connection: its request parser, its deadline, and the exchanges it carries in turn.

Every request of the connection is parsed (llhttp through httptools), checked, authorised
(:func:`~hagate.gateway.http.access.authorize`) and forwarded on its own; pipelined requests
wait, parsed, until the response before them is complete. The close is a lingering one
(RFC 9112 §9.6), so an unread upload does not turn it into a reset that destroys the answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING

import httptools

from hagate.gateway.http.access import Allowed, Refusal, authorize, authorize_known
from hagate.gateway.http.answers import error_response
from hagate.gateway.http.clientip import forwarded_chain, forwarded_proto, is_trusted
from hagate.gateway.http.deadline import Deadline, Deadlines, Wait
from hagate.gateway.http.exchange import READ_SIZE, Exchange
from hagate.gateway.http.fields import forwarded_fields
from hagate.gateway.http.request import END, Event, Header, Request, parse_refusal, refusal
from hagate.net.conn import Conn
from hagate.net.pipe import Pipe
from hagate.net.tls import Identity

if TYPE_CHECKING:
    from hagate.gateway.http.front import HttpFront

LINGER = 2.0  # after a last answer, how long unread input is drained before the close
LINGER_BYTES = 1 << 20
REPLY_TIMEOUT = 5.0  # for the user to take an answer of the gateway's own
YIELD_EVERY = 32  # requests of one connection between two turns of the event loop at least


class UserConn:
    """Serves one connection until either side closes (or it is upgraded to a pipe)."""

    __slots__ = (
        "_head_fed",
        "_head_size",
        "_headers",
        "_in_head",
        "_url",
        "_via_key",
        "allowed",
        "cert",
        "client_ip",
        "conn",
        "deadlines",
        "error",
        "events",
        "forwarded",
        "front",
        "parser",
        "peer",
        "peer_done",
        "pipe",
        "proxied",
        "sni",
        "upgrade_tail",
        "upstream",
        "via",
    )

    def __init__(
        self,
        front: HttpFront,
        conn: Conn,
        client: tuple[str, int],
        sni: str | None,
        cert: Identity | None,
    ) -> None:
        self.front = front
        self.conn = conn
        self.peer = str(client[0])  # the TCP peer
        # Behind a trusted proxy the client is each request's own (one upstream keep-alive
        # connection of nginx carries many users): client_ip and forwarded are set per
        # request by via_proxy. Else they are the peer's, once for the connection.
        self.proxied = is_trusted(self.peer, front.trusted_proxies)
        self.client_ip = self.peer
        self.via: str | None = None  # the proxy that named client_ip (for the access log)
        self._via_key: tuple[list[bytes], list[bytes], list[bytes]] | None = (
            None  # fields last read
        )
        self.sni = sni
        self.cert = cert
        self.deadlines = Deadlines(conn.loop)
        self.events: deque[Event] = deque()
        self.error: str | None = None  # llhttp refused what followed the queued events
        self.upgrade_tail: bytes | None = None
        self.forwarded = forwarded_fields(self.client_ip, front.proto)
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[Header] = []
        self._in_head = False
        self._head_fed = 0
        self._head_size = 0
        self.upstream: Conn | None = None  # of the exchange in progress (for abort)
        self.pipe: Pipe | None = None
        self.peer_done = False  # the user sent FIN (or went quiet): no lingering close
        self.allowed: Allowed | None = None  # what the policy allowed this connection

    # ---------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._head_fed = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:  # else a trailer field of a chunked body: dropped
            self._headers.append((name.lower(), name, value))
            self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        parser = self.parser
        self._in_head = False
        self._head_fed = 0
        self.events.append(
            Request(
                parser.get_method(),
                self._url,
                parser.get_http_version(),
                self._headers,
                parser.should_keep_alive(),
                parser.should_upgrade(),
                self._head_size > self.front.header_bytes,
            )
        )

    def on_body(self, body: bytes) -> None:
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.events.append(END)

    def feed(self, data: bytes) -> None:
        """Parse bytes from the user into events; refusals become ``self.error``."""
        if self.error is not None or self.upgrade_tail is not None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_tail = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self.error = str(exc) or type(exc).__name__
        if self._in_head:
            self._head_fed += len(data)
            if self._head_fed > self.front.header_bytes + READ_SIZE:
                self.error = "431"

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        first = True
        served = 0
        while True:
            req = await self.next_request(first)
            if req is None:
                return
            first = False
            if not await self.exchange(req):
                return
            served += 1
            if not served % YIELD_EVERY:
                # Requests that are there and answered by the gateway itself (refusals)
                # never wait: a client pipelining them must not keep the loop to itself.
                await asyncio.sleep(0)

    async def recv(self, delay: float, kind: Wait) -> bytes:
        """Bytes from the user (b"" at EOF) within ``delay`` seconds, else Deadline."""
        deadlines = self.deadlines
        deadlines.arm(delay, kind)
        try:
            return await self.conn.recv_some(READ_SIZE)
        except asyncio.CancelledError:
            if deadlines.timed_out is None:
                raise
            raise deadlines.passed() from None
        finally:
            deadlines.disarm()

    async def next_request(self, first: bool) -> Request | None:
        """The next request head, or None when the connection is over (answered if need be)."""
        front = self.front
        events = self.events
        while True:
            while events:
                event = events.popleft()
                if isinstance(event, Request):
                    return event
            if self.error is not None:
                status, message = parse_refusal(self.error)
                await self.reply(status, message, close=True)
                return None
            if self.upgrade_tail is not None:
                return None  # a refused upgrade: its connection is not HTTP any more
            try:
                got = self.conn.recv_nowait(READ_SIZE)  # the next request is usually there
                if got is not None:
                    data = got
                elif self._in_head or first:
                    data = await self.recv(front.head_timeout, Wait.HEAD)
                else:
                    data = await self.recv(front.idle_timeout, Wait.IDLE)
            except Deadline as exc:
                if exc.wait is Wait.HEAD:
                    await self.reply(408, "request head not received in time", close=True)
                else:
                    self.peer_done = True
                return None
            if not data:
                self.peer_done = True
                return None
            self.feed(data)

    # -------------------------------------------------------------- one exchange

    async def exchange(self, req: Request) -> bool:
        """Answer one request; whether the connection may carry another."""
        refused = refusal(req)
        if refused is None and self.error is not None and END not in self.events:
            refused = parse_refusal(self.error)  # its own body is bad
        if refused is not None:
            await self.reply(*refused, close=True)
            return False
        if self.proxied:
            self.via_proxy(req)
        grant = authorize_known(
            self.front, req, self.client_ip, self.sni, self.cert, self.allowed, self.via
        )
        if grant is None:
            grant, self.allowed = await authorize(
                self.front, req, self.client_ip, self.sni, self.cert, self.allowed, self.via
            )
        if isinstance(grant, Refusal):
            return await self.refuse(req, grant.status, grant.message, grant.challenge)
        route, lease, strip_auth = grant
        lease.on_abort(self.abort)
        ex = Exchange(self, req, route, lease, strip_auth)
        try:
            return await ex.run()
        finally:
            self.upstream = None
            if self.pipe is None:
                lease.end(ex.result, ex.status)

    def via_proxy(self, req: Request) -> None:
        """The request's own client, named by the trusted proxy that sent it (clientip.py),
        and the Forwarded fields the device gets for it. The memo of allowed decisions was
        made for one client (the policy's address rules): another client starts a new one.
        Fields equal to the previous request's give the same answer, kept from then."""
        xff: list[bytes] = []
        fwd: list[bytes] = []
        xfp: list[bytes] = []
        for lname, _name, value in req.headers:
            if lname == b"x-forwarded-for":
                xff.append(value)
            elif lname == b"forwarded":
                fwd.append(value)
            elif lname == b"x-forwarded-proto":
                xfp.append(value)
        key = (xff, fwd, xfp)
        if key == self._via_key:
            return  # the same user's next request (the walk costs ~6 us): as decided
        self._via_key = key
        fwd_text = [v.decode("latin-1") for v in fwd]
        chain = forwarded_chain(
            self.peer, [v.decode("latin-1") for v in xff], fwd_text, self.front.trusted_proxies
        )
        client = chain[0]
        if client != self.client_ip:
            self.allowed = None
            self.client_ip = client
            self.via = None if client == self.peer else self.peer
        # The scheme the proxy's client used (a TLS-terminating nginx: https), else ours.
        proto = forwarded_proto([v.decode("latin-1") for v in xfp], fwd_text) or self.front.proto
        self.forwarded = forwarded_fields(client, proto, tuple(chain[1:]))

    async def refuse(
        self, req: Request, status: int, message: str, challenge: str | None = None
    ) -> bool:
        """An answer of the gateway's own; the connection goes on if no body is left unread."""
        close = req.close or req.body or req.upgrade is not None
        if not close:
            while self.events and self.events[0] is END:
                self.events.popleft()
        await self.reply(
            status, message, close=close, challenge=challenge, head=req.method == b"HEAD"
        )
        return not close

    async def reply(
        self,
        status: int,
        message: str,
        *,
        close: bool,
        challenge: str | None = None,
        head: bool = False,
    ) -> None:
        self.front.responses[status] += 1
        self.conn.write(
            error_response(status, message, close=close, challenge=challenge, head_only=head)
        )
        if close or self.conn.wbuf:
            deadlines = self.deadlines
            deadlines.arm(REPLY_TIMEOUT, Wait.SEND)
            try:
                await self.conn.drain()
            except asyncio.CancelledError:
                if deadlines.timed_out is None:
                    raise
                deadlines.passed()
                self.conn.close()
            finally:
                deadlines.disarm()

    # ------------------------------------------------------------------ the end

    async def linger(self) -> None:
        """Close as RFC 9112 §9.6 asks: FIN first, then read what the user still sends for a
        while, so that an unread upload does not turn the close into a reset that destroys
        the last answer before the user has read it."""
        conn = self.conn
        if conn.closed or self.peer_done or self.pipe is not None:
            return
        deadlines = self.deadlines
        deadlines.arm(LINGER, Wait.SEND)
        try:
            await conn.drain()
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)
            seen = 0
            while seen < LINGER_BYTES:
                data = await conn.recv_some(READ_SIZE)
                if not data:
                    return
                seen += len(data)
        except asyncio.CancelledError:
            if deadlines.timed_out is None:
                raise
            deadlines.passed()
        except OSError:
            pass
        finally:
            deadlines.disarm()

    def abort(self) -> None:
        """The lease was cut (revocation): close both sides now."""
        if self.pipe is not None:
            self.pipe.abort()
        self.conn.close()
        if self.upstream is not None:
            self.upstream.close()

    def finish(self) -> None:
        self.deadlines.close()
        if self.pipe is None:
            self.conn.close()
