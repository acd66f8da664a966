"""Per-packet CPU cost of the backup's receive path, without a lab or the event loop.

Run by hand as root (not collected by pytest):  .venv/bin/python tests/daemon/bench_receive.py
100 VRRPv3 BACKUP instances; each IPv4 advert goes the daemon's way from the socket's drain
loop through the VRID dispatch, the receive checks and the state machine to the timer. The
kernel socket is replaced by a queue, so the figure is the Python work per packet (process
CPU time), which load on the machine disturbs far less than the lab benchmark.
Compare trees with PYTHONPATH=<other checkout>/src.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from hagate.config import load
from hagate.daemon.driver import Daemon, Options
from hagate.daemon.plan import plan_instance
from hagate.daemon.runtime import Host, InstanceRuntime
from hagate.daemon.sockets import VrrpSocket
from hagate.vrrp.advert import MULTICAST_V4, Advert
from hagate.vrrp.packet import encode

COUNT = 100
MASTER = IPv4Address("10.1.1.5")


class _Quiet:
    def notify(self, *args: object) -> None:
        return None

    def on_action(self, *args: object) -> None:
        return None

    def prepare(self, src: object, dst: object, ttl: object = None) -> None:
        return None


class _Queue:
    """recv() hands out one datagram, then EAGAIN: one packet per wake-up, the worst case."""

    def __init__(self) -> None:
        self.next: bytes | None = None

    def recv(self, size: int) -> bytes:
        data, self.next = self.next, None
        if data is None:
            raise BlockingIOError
        return data


def _packets() -> list[bytes]:
    out = []
    for vrid in range(1, COUNT + 1):
        body = encode(
            Advert(3, vrid, 200, 10, (IPv4Address(f"10.2.0.{vrid}"),)), MASTER, MULTICAST_V4
        )
        header = bytes.fromhex("45c0") + (20 + len(body)).to_bytes(2, "big")
        header += bytes.fromhex("00000000ff700000") + MASTER.packed + MULTICAST_V4.packed
        out.append(header + body)
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    conf = Path(tempfile.mkdtemp()) / "keepalived.conf"
    conf.write_text(
        "".join(
            f"vrrp_instance VI_{i} {{\n state BACKUP\n interface eth0\n virtual_router_id {i}\n"
            f" priority 100\n advert_int 0.1\n version 3\n"
            f" virtual_ipaddress {{\n  10.2.0.{i}/16\n }}\n}}\n"
            for i in range(1, COUNT + 1)
        )
    )
    config, _ = load(conf)
    loop = asyncio.new_event_loop()
    quiet: Any = _Quiet()
    host = Host(loop, quiet, quiet, quiet)
    table: dict[int, InstanceRuntime] = {}
    for inst in config.vrrp_instances:
        plan = plan_instance(config, inst, [IPv4Address("10.1.1.10")])
        rt = InstanceRuntime(plan, quiet, host, bytes(6))
        rt.start()
        table[plan.params.vrid] = rt
    daemon = Daemon(Options(conf, conf.parent))
    vsock = VrrpSocket("lo", socket.if_nametoindex("lo"), socket.AF_INET)  # nothing is sent
    real, queue = vsock._sock, _Queue()
    vsock._sock = queue  # type: ignore[assignment]
    vsock._reader = functools.partial(daemon._on_packet, table)
    packets = _packets()
    t0 = time.process_time()
    for k in range(n):
        queue.next = packets[k % COUNT]
        vsock._drain()
    spent = time.process_time() - t0
    received = sum(rt.adverts_in for rt in table.values())
    print(f"{spent / n * 1e6:.2f} us CPU per advert ({received} of {n} accepted)")
    real.close()
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    return 0 if received == n else 1


if __name__ == "__main__":
    sys.exit(main())
