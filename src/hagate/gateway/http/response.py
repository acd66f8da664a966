"""A device's response as the user gets it: parsed by llhttp, hop-by-hop fields dropped,
framing redone for the user's HTTP version, and whether the upstream can be reused after it.

:class:`Framing` holds the llhttp callbacks and the rules; the exchange
(:mod:`hagate.gateway.http.exchange`) adds the I/O. Bytes for the user accumulate in ``out``
and are written after each parse, so a response that arrives in one read costs one write.
Pure: no sockets.
"""

from __future__ import annotations

import httptools

from hagate.gateway.http.fields import DROP_FROM_RESPONSE, NO_TOKENS, PROTECTED, connection_tokens
from hagate.gateway.http.request import Header, Request


class Framing:
    """One response: parser callbacks, and what they decided."""

    __slots__ = (
        "_headers",
        "_in_head",
        "_reason",
        "body_sent",
        "close_user",
        "done",
        "head_request",
        "out",
        "parser",
        "rechunk",
        "req",
        "reusable",
        "sent",
        "status",
        "switched",
        "until_eof",
        "user_11",
    )

    def __init__(self, req: Request) -> None:
        self.req = req
        self.status: int | None = None
        self.out = bytearray()  # toward the user, written after each parse
        self.head_request = req.method == b"HEAD"
        self.user_11 = req.version == "1.1"
        self.close_user = req.close
        self.reusable = True  # the upstream, once this exchange is over
        self.sent = False  # to the user (after which no error answer can be made)
        self.until_eof = False  # the device ends this body by closing
        self.done = False
        self.switched = False
        self.body_sent = not req.body
        self.rechunk = False
        self._reason = b""
        self._headers: list[Header] = []
        self._in_head = False
        self.parser: httptools.HttpResponseParser | None = None

    # ------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        if self.done:  # bytes after the response: the upstream is not clean
            self.reusable = False
        self._headers = []
        self._reason = b""
        self._in_head = True

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self._headers.append((name.lower(), name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self._in_head = False
        status = self.parser.get_status_code()
        if self.done:
            self.reusable = False
            return
        if status < 200 and status != 101:  # 100 Continue, 103 Early Hints: passed on
            if self.user_11:
                self.out += self.response_head(status, interim=True)
            return
        self.status = status
        self.out += self.response_head(status)
        if self.head_request or status in (204, 304) or status == 101:
            self.done = True
            self.parser = None if self.head_request else self.parser

    def on_body(self, body: bytes) -> None:
        if self.done or self.switched:
            self.reusable = False
        elif self.rechunk:
            self.out += b"%x\r\n%b\r\n" % (len(body), body)
        else:
            self.out += body

    def on_message_complete(self) -> None:
        if self.status is None or self.done:
            return  # an interim response, or the end of a body-less one
        if self.rechunk:
            self.out += b"0\r\n\r\n"
        self.done = True

    # ----------------------------------------------------------- the rules

    def response_head(self, status: int, interim: bool = False) -> bytes:
        """The device's head as the user gets it: hop-by-hop fields dropped, framing redone."""
        assert self.parser is not None
        headers = self._headers
        tokens = NO_TOKENS
        conn_values = [v for n, _, v in headers if n == b"connection"]
        if conn_values:
            tokens = connection_tokens(conn_values) - PROTECTED
        parts = [b"HTTP/1.1 %d %b\r\n" % (status, self._reason or b"-")]
        has_length = chunked = False
        te_value = b"chunked"
        for lname, name, value in headers:
            if lname in DROP_FROM_RESPONSE or lname in tokens:
                if lname == b"transfer-encoding":
                    chunked = True
                    te_value = value
                continue
            if lname == b"content-length":
                has_length = True
            parts.append(b"%b: %b\r\n" % (name, value))
        if interim:
            parts.append(b"\r\n")
            return b"".join(parts)
        if status == 101:
            parts.append(b"Connection: upgrade\r\n")
            upgrade = next((v for n, _, v in headers if n == b"upgrade"), None)
            if upgrade is not None:
                parts.append(b"Upgrade: %b\r\n" % upgrade)
            parts.append(b"\r\n")
            return b"".join(parts)
        if b"close" in tokens or (
            b"keep-alive" not in tokens and self.parser.get_http_version() != "1.1"
        ):
            self.reusable = False
        bodyless = self.head_request or status in (204, 304)
        if not bodyless:
            if chunked:
                if self.user_11:
                    self.rechunk = True
                    parts.append(b"Transfer-Encoding: %b\r\n" % te_value)
                else:
                    self.close_user = True  # an HTTP/1.0 client: the body ends at close
            elif not has_length:  # the device ends its body by closing
                self.reusable = False
                self.until_eof = True
                if self.user_11:
                    self.rechunk = True
                    parts.append(b"Transfer-Encoding: chunked\r\n")
                else:
                    self.close_user = True
        if self.req.body and not self.body_sent:
            self.close_user = True  # answered before the upload ended: the rest is not read
        if self.close_user:
            parts.append(b"Connection: close\r\n")
        elif not self.user_11:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def feed_response(self, data: bytes) -> bytes | None:
        """Parse bytes from the device; the bytes after a 101 head, if it switched.
        EOFError if the device's answer cannot be passed on."""
        parser = self.parser
        if parser is None:  # after a HEAD response: anything more is stray
            self.reusable = False
            return None
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.status == 101 and self.req.upgrade is not None:
                self.switched = True
                return data[exc.args[0] :]
            self.reusable = False
            raise EOFError("the device switched protocols unasked") from None
        except httptools.HttpParserError as exc:
            self.reusable = False
            if not self.sent and self.status is None:
                self.out.clear()
                raise EOFError(f"bad response from the device: {exc}") from None
            self.close_user = True
            self.done = True
        return None

    def eof_ends_body(self) -> None:
        """The device closed: that ends a close-delimited body."""
        self.reusable = False
        if self.rechunk:
            self.out += b"0\r\n\r\n"
        self.done = True
