"""Status of a running daemon: a Unix socket serving a JSON snapshot, a text view, and
Prometheus text exposition (served over HTTP with ``hagate vrrp --metrics HOST:PORT``,
followed by keepalived-exporter's metric families: :mod:`hagate.daemon.exporter`).

The snapshot is a plain dict built by the driver on request (nothing is maintained for it):
``{"pid", "config", "started", "instances": [{name, vrid, interface, version, family,
state, base_priority, effective_priority, master, last_transition {at, old, new, reason},
history [the last 32 transitions, oldest first, each {at, old, new, reason}],
heard_master {at, from, priority} (the last advert heard from the master while backup,
or null), counters {adverts_in, adverts_out, garps_sent, transitions, discards {reason: n}},
scripts [{name, status, weight}], vips}]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Snapshot = dict[str, Any]
STATUS_SOCKET = "vrrp.sock"
PID_FILE = "vrrp.pid"
LOCK_FILE = "vrrp.lock"


class StatusError(RuntimeError):
    """The daemon's status could not be read; the message says why."""


class SocketInUse(RuntimeError):
    """Another live daemon answers on the status socket."""


def socket_alive(path: Path, timeout: float = 0.5) -> bool:
    """True if something accepts connections on the Unix socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class StatusServer:
    """Unix stream socket at ``path``: each connection gets one JSON snapshot."""

    def __init__(self, path: Path, snapshot: Callable[[], Snapshot]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        # A socket file left by a dead daemon is replaced; a live one is not ours to take
        # (its pid file may have been deleted: the run directory's lock is the first guard,
        # this the second).
        if socket_alive(self.path):
            raise SocketInUse(f"another daemon answers on {self.path}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o660)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(self._snapshot(), default=str).encode() + b"\n")
            await writer.drain()
        except Exception as exc:  # a client going away mid-write is not our problem
            log.debug("status client: %s", exc)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def query(run_dir: Path, timeout: float = 2.0) -> Snapshot:
    """Read the snapshot of the daemon whose runtime directory is ``run_dir``."""
    path = run_dir / STATUS_SOCKET
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        raise StatusError(f"no hagate vrrp daemon running with run directory {run_dir}") from None
    except ConnectionRefusedError:
        raise StatusError(f"stale status socket {path}: the daemon is not running") from None
    except OSError as exc:
        raise StatusError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(b"".join(chunks))
    except ValueError:
        raise StatusError(f"garbled status from {path}") from None
    if not isinstance(data, dict):
        raise StatusError(f"garbled status from {path}")
    return data


def _ago(at: float | None, now: float) -> str:
    if not at:
        return "never"
    secs = max(0.0, now - at)
    if secs < 120:
        return f"{secs:.1f} s ago"
    if secs < 7200:
        return f"{secs / 60:.0f} min ago"
    return f"{secs / 3600:.1f} h ago"


def format_text(snap: Snapshot, now: float | None = None) -> str:
    """Human-readable status, one block per instance."""
    now = time.time() if now is None else now
    lines = [f"hagate vrrp, pid {snap.get('pid')}, config {snap.get('config')}"]
    for inst in snap.get("instances", []):
        c = inst.get("counters", {})
        last = inst.get("last_transition") or {}
        lines.append("")
        lines.append(
            f"{inst['name']}: {inst['state']}  (VRID {inst['vrid']} on {inst['interface']}, "
            f"VRRPv{inst['version']}, IPv{inst['family']})"
        )
        lines.append(f"  priority      {inst['effective_priority']} (base {inst['base_priority']})")
        lines.append(f"  master        {inst.get('master') or 'unknown'}")
        heard = inst.get("heard_master")
        if isinstance(heard, dict):
            lines.append(
                f"  master heard  {heard.get('from')} (priority {heard.get('priority')}) "
                f"{_ago(heard.get('at'), now)}"
            )
        lines.append(f"  virtual IPs   {', '.join(inst.get('vips', [])) or '-'}")
        if last:
            lines.append(
                f"  last change   {last.get('old')} -> {last.get('new')} "
                f"{_ago(last.get('at'), now)}: {last.get('reason')}"
            )
        lines.append(
            f"  adverts       in {c.get('adverts_in', 0)}, out {c.get('adverts_out', 0)}; "
            f"GARP/NA sent {c.get('garps_sent', 0)}; transitions {c.get('transitions', 0)}"
        )
        discards = c.get("discards", {})
        if discards:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(discards.items()))
            lines.append(f"  discarded     {detail}")
        for s in inst.get("scripts", []):
            lines.append(f"  script        {s['name']}: {s['status']} (weight {s['weight']})")
    sockets = [sk for sk in snap.get("sockets", []) if sk.get("kernel_drops") is not None]
    if sockets:
        lines.append("")
        for sk in sockets:
            lines.append(
                f"socket {sk['interface']} IPv{sk['family']}: kernel drops {sk['kernel_drops']}, "
                f"receive buffer {sk.get('receive_buffer', 0) // 1024} KiB"
            )
    return "\n".join(lines) + "\n"


_STATE_VALUES = ("INITIALIZE", "BACKUP", "MASTER", "FAULT", "STOP")


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(snap: Snapshot) -> str:
    """Prometheus text exposition format 0.0.4 of the snapshot."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    insts = snap.get("instances", [])

    def labels(inst: dict[str, Any], extra: str = "") -> str:
        base = (
            f'instance_name="{_label(inst["name"])}",vrid="{inst["vrid"]}",'
            f'interface="{_label(inst["interface"])}"'
        )
        return "{" + base + (("," + extra) if extra else "") + "}"

    family("hagate_vrrp_state", "gauge", "1 for the state the instance is in.")
    for inst in insts:
        for st in _STATE_VALUES:
            value = 1 if inst["state"] == st else 0
            extra = 'state="' + st + '"'
            out.append(f"hagate_vrrp_state{labels(inst, extra)} {value}")
    for key, help_text in (
        ("base_priority", "Configured priority."),
        ("effective_priority", "Priority after tracked scripts and interfaces."),
    ):
        family(f"hagate_vrrp_{key}", "gauge", help_text)
        for inst in insts:
            out.append(f"hagate_vrrp_{key}{labels(inst)} {inst[key]}")
    family("hagate_vrrp_last_transition_timestamp_seconds", "gauge", "Time of the last change.")
    for inst in insts:
        at = (inst.get("last_transition") or {}).get("at") or 0
        out.append(f"hagate_vrrp_last_transition_timestamp_seconds{labels(inst)} {at}")
    for key, help_text in (
        ("adverts_in", "Adverts received and accepted."),
        ("adverts_out", "Adverts sent."),
        ("garps_sent", "Gratuitous ARPs and unsolicited NAs sent."),
        ("transitions", "State changes."),
    ):
        family(f"hagate_vrrp_{key}_total", "counter", help_text)
        for inst in insts:
            out.append(f"hagate_vrrp_{key}_total{labels(inst)} {inst['counters'].get(key, 0)}")
    family("hagate_vrrp_discards_total", "counter", "Received packets discarded, by reason.")
    for inst in insts:
        for reason, n in sorted(inst["counters"].get("discards", {}).items()):
            extra = 'reason="' + _label(reason) + '"'
            out.append(f"hagate_vrrp_discards_total{labels(inst, extra)} {n}")
    family("hagate_vrrp_script_ok", "gauge", "1 while a tracked script succeeds.")
    for inst in insts:
        for s in inst.get("scripts", []):
            extra = f'script="{_label(s["name"])}"'
            out.append(
                f"hagate_vrrp_script_ok{labels(inst, extra)} {1 if s['status'] == 'ok' else 0}"
            )
    family(
        "hagate_vrrp_priority_zero_unanswered_total",
        "counter",
        "Priority-0 adverts not answered (at most one answer per advert interval).",
    )
    for inst in insts:
        n = inst["counters"].get("priority_zero_unanswered", 0)
        out.append(f"hagate_vrrp_priority_zero_unanswered_total{labels(inst)} {n}")
    sockets = snap.get("sockets", [])
    family(
        "hagate_vrrp_kernel_drops_total",
        "counter",
        "Packets the kernel dropped on a VRRP socket (receive queue full).",
    )
    for sk in sockets:
        if sk.get("kernel_drops") is None:
            continue
        lab = f'interface="{_label(sk["interface"])}",family="{sk["family"]}"'
        out.append(f"hagate_vrrp_kernel_drops_total{{{lab}}} {sk['kernel_drops']}")
    unrouted = snap.get("discards_unknown_vrid", 0)
    family("hagate_vrrp_unknown_vrid_total", "counter", "Adverts for a VRID we do not run.")
    out.append(f"hagate_vrrp_unknown_vrid_total {unrouted}")
    return "\n".join(out) + "\n"


class MetricsServer:
    """A minimal HTTP/1.0 server answering ``GET /metrics`` with :func:`prometheus_text`."""

    def __init__(self, host: str, port: int, snapshot: Callable[[], Snapshot]) -> None:
        self.host, self.port = host, port
        self._snapshot = snapshot
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            if (
                len(parts) >= 2
                and parts[0] == "GET"
                and parts[1].split("?")[0] in ("/metrics", "/")
            ):
                from hagate.daemon.exporter import metrics_text  # at the first scrape

                body = metrics_text(self._snapshot(), prometheus_text).encode()
                head = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            else:
                body = b"not found: try /metrics\n"
                head = "404 Not Found", "text/plain"
            writer.write(
                f"HTTP/1.0 {head[0]}\r\nContent-Type: {head[1]}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except Exception as exc:
            log.debug("metrics client: %s", exc)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); ValueError with a clear message."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
