"""A loopback TCP port in the test's namespace that reaches a port on the loopback of a lab
node's namespace: how the console (a process in the host namespace, bound to loopback) reads
a lab gateway's admin listener. Nothing is listening or sent anywhere but on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

SocketFactory = Callable[[], socket.socket]


class Relay:
    def __init__(self, factory: SocketFactory, target: tuple[str, int]) -> None:
        self._factory = factory
        self._target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._factory()
            upstream.settimeout(2)
            upstream.connect(self._target)
        except OSError:
            client.close()  # the node is down: the console sees the connection close
            return
        with self._lock:
            self._socks |= {client, upstream}
        t = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        t.start()
        _copy(client, upstream)
        t.join(5)
        for s in (client, upstream):
            s.close()
        with self._lock:
            self._socks -= {client, upstream}

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(2)
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    src.settimeout(10)
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)
