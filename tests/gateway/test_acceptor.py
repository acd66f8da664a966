"""The listener's accept loop when the process runs out of descriptors."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from hagate.gateway import admission
from hagate.gateway.admission import Acceptor


class Exhausted(socket.socket):
    """A listening socket whose accept() fails with EMFILE the first ``fails`` times."""

    fails = 3
    calls = 0

    def accept(self) -> tuple[socket.socket, object]:  # type: ignore[override]
        self.calls += 1
        if self.calls <= self.fails:
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_emfile_pauses_the_listener_instead_of_spinning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(admission, "ACCEPT_PAUSE_S", 0.2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = Exhausted(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        lsock.setblocking(False)
        served: list[tuple[str, int]] = []

        async def handler(sock: socket.socket, addr: tuple[str, int]) -> None:
            served.append(addr)
            sock.close()

        acceptor = Acceptor(loop, lambda coro: loop.create_task(coro) and None)
        acceptor.watch(lsock, handler)
        client = socket.create_connection(lsock.getsockname())
        try:
            await asyncio.sleep(0.1)
            # Readable the whole time, yet one failed accept per pause, not thousands.
            assert lsock.calls == 1 and acceptor.accept_pauses == 1 and not served
            for _ in range(40):
                if served:
                    break
                await asyncio.sleep(0.05)
            assert served, "the listener never resumed"
            # the good accept, then the one that finds the queue empty
            assert lsock.calls == Exhausted.fails + 2 and acceptor.accept_pauses == Exhausted.fails
        finally:
            client.close()
            acceptor.unwatch(lsock)
            lsock.close()

    asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(lines) == Exhausted.fails and "not accepting" in lines[0]
