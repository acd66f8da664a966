"""The user's side: HTTP requests through the VIP at a steady rate, each result time-stamped.

Every request is a fresh TCP connection from a socket in the user node's namespace, sent on a
fixed schedule (a slow answer never delays the next request), so the success/failure record
has the same resolution during an outage as before it. Times are ``time.monotonic()``, the
clock the lab's watchers and ``Node.crash`` use.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from hagate.lab import LabError, Node


@dataclass(frozen=True, slots=True)
class Request:
    """One request: when it was sent and answered, whether it succeeded, and why not."""

    start: float
    end: float
    ok: bool
    detail: str  # "200" or the failure ("timeout", "refused", "502", ...)

    def as_dict(self, t0: float) -> dict[str, object]:
        data = asdict(self)
        data["start"] = round(self.start - t0, 4)
        data["end"] = round(self.end - t0, 4)
        return data


def http_get(
    sock_factory: Callable[[], socket.socket],
    address: tuple[str, int],
    host: str,
    path: str = "/",
    timeout: float = 0.5,
) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 GET; raises OSError/ValueError/TimeoutError on failure."""
    deadline = time.monotonic() + timeout
    with sock_factory() as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError("no HTTP response" if not raw else "malformed HTTP response")
    return int(parts[1]), body


def get_text(node: Node, port: int, path: str, timeout: float = 0.5) -> str | None:
    """The body of GET http://127.0.0.1:PORT/PATH inside ``node``'s namespace, if 200."""

    def factory() -> socket.socket:
        return node.socket(socket.AF_INET, socket.SOCK_STREAM)

    try:
        status, body = http_get(factory, ("127.0.0.1", port), "localhost", path, timeout)
    except (OSError, ValueError, LabError):
        return None
    return body.decode(errors="replace") if status == 200 else None


def get_json(node: Node, port: int, path: str, timeout: float = 0.5) -> dict[str, object] | None:
    """GET http://127.0.0.1:PORT/PATH inside ``node``'s namespace as JSON; None if it fails."""

    def factory() -> socket.socket:
        return node.socket(socket.AF_INET, socket.SOCK_STREAM)

    try:
        _status, body = http_get(factory, ("127.0.0.1", port), "localhost", path, timeout)
        data = json.loads(body)
    except (OSError, ValueError, LabError):
        return None
    return data if isinstance(data, dict) else None


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class RequestLoop:
    """Requests at ``rate`` per second from ``node`` to ``address`` with Host ``host``."""

    def __init__(
        self,
        node: Node,
        address: tuple[str, int],
        host: str,
        expect: bytes,
        rate: float = 20.0,
        timeout: float = 0.5,
    ) -> None:
        self.node = node
        self.address = address
        self.host = host
        self.expect = expect
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.results: list[Request] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=int(rate * timeout) + 4)
        self._thread = threading.Thread(target=self._schedule, name="demo-requests", daemon=True)

    def start(self) -> RequestLoop:
        self._thread.start()
        return self

    def _schedule(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow machine): do not burst to catch up
                next_at = time.monotonic()
            elif self._stop.wait(delay):
                break

    def _socket(self) -> socket.socket:
        return self.node.socket(socket.AF_INET, socket.SOCK_STREAM)

    def _one(self) -> None:
        start = time.monotonic()
        try:
            status, body = http_get(self._socket, self.address, self.host, "/", self.timeout)
            ok = status == 200 and self.expect in body
            detail = str(status) if status != 200 or ok else "200 (unexpected body)"
        except (OSError, ValueError, LabError) as exc:
            ok, detail = False, _failure(exc)
        result = Request(start, time.monotonic(), ok, detail)
        with self._lock:
            self.results.append(result)
            self._lock.notify_all()

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)

    def snapshot(self) -> list[Request]:
        """All results so far, ordered by send time."""
        with self._lock:
            return sorted(self.results, key=lambda r: r.start)

    def first_ok(self, after: float) -> Request | None:
        """The first successful request sent at or after ``after``."""
        return next((r for r in self.snapshot() if r.ok and r.start >= after), None)

    def wait_ok(self, after: float, timeout: float) -> Request:
        """Block until a request sent at or after ``after`` succeeds; LabError at timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = next((r for r in self.results if r.ok and r.start >= after), None)
                if found is not None:
                    return self.first_ok(after) or found
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.results[-1].detail if self.results else "no request finished"
                    raise LabError(f"no successful request within {timeout:g} s (last: {last})")
                self._lock.wait(min(left, 0.05))
