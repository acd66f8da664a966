"""The gateway's tunnel front on loopback: garbage, bad versions, stale data connections.

Each gets exactly one coded ``error`` line and a close, never a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gateway.kit import client_config, gateway_config, make_pki, running_gateway
from hagate.net.tls import client_context
from hagate.tunnel.wire import Refused, decode


async def _exchange(ctx: ssl.SSLContext, port: int, payload: bytes) -> list[bytes]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    writer.write(payload)
    await writer.drain()
    lines = []
    try:
        while line := await asyncio.wait_for(reader.readline(), 5):
            lines.append(line)
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()
    return lines


@pytest.mark.parametrize(
    ("payload", "code", "text"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "protocol", "not a JSON line"),
        (b'{"op":"hello","v":0,"services":[]}\n', "version", "version 0 is not supported"),
        (b'{"op":"teleport"}\n', "protocol", "unknown op"),
        (b'{"op":"data","session":"nope","token":""}\n', "stale_session", "not the current"),
        (b"x" * 70000, "protocol", "longer than 65536"),
    ],
)
def test_bad_first_lines_get_one_coded_error(
    tmp_path: Path, payload: bytes, code: str, text: str
) -> None:
    pki = make_pki(tmp_path / "pki", devices=("dev1",))

    async def main() -> None:
        async with running_gateway(gateway_config(pki)) as gw:
            port = gw.addresses["tunnel"][1]
            c = client_config(pki, "device", "dev1", port)
            lines = await _exchange(client_context(c.cert, c.key, c.ca), port, payload)
            assert len(lines) == 1, lines
            msg = decode(lines[0])
            assert isinstance(msg, Refused) and msg.code == code and text in msg.error
            assert gw.metrics.auth_failures[code] == 1 or code == "stale_session"

    asyncio.run(main())


def test_a_user_certificate_cannot_say_hello(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", devices=("dev1",))

    async def main() -> None:
        async with running_gateway(gateway_config(pki)) as gw:
            port = gw.addresses["tunnel"][1]
            c = client_config(pki, "user", "alice", port)
            hello = b'{"op":"hello","v":2,"services":[]}\n'
            lines = await _exchange(client_context(c.cert, c.key, c.ca), port, hello)
            msg = decode(lines[0])
            assert isinstance(msg, Refused) and msg.code == "wrong_role"
            assert "dev1" not in gw.sessions

    asyncio.run(main())
