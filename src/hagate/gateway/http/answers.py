"""The answers the gateway makes itself (refusals, timeouts, bad gateways): short text/plain,
never a device's page, never cached. Pure: bytes out."""

from __future__ import annotations

from http import HTTPStatus


def error_response(
    code: int,
    message: str,
    *,
    close: bool = True,
    challenge: str | None = None,
    head_only: bool = False,
) -> bytes:
    """The whole response; ``head_only`` for an answer to HEAD (same head, no body)."""
    body = (message.replace("\r", " ").replace("\n", " ")[:500] + "\n").encode("utf-8", "replace")
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    extra = ""
    if challenge:
        extra += f"WWW-Authenticate: {challenge}\r\n"
    if close:
        extra += "Connection: close\r\n"
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        f"{extra}\r\n"
    ).encode("latin-1", "replace")
    return head if head_only else head + body
