"""Many device agents in one process, each with its own device certificate (lab and bench).

A fleet of thousands of devices cannot be a process each on a 2-core machine: this runs
``count`` :class:`~hagate.agent.agent.Agent` sessions on one event loop, device
``<prefix><index>`` for index in ``[first, first + count)``, each with the bundle the PKI
issued in ``<pki>/issued/device/<name>/`` and the same local service. Agents start on a ramp
(``ramp`` s apart), not as a SYN flood.

With ``--events FILE`` every session going up or down is appended to FILE as
``<monotonic time> <index> up|down`` lines, flushed every half second (nothing is written
while the fleet is idle), so a bench measures every agent's reconnection on the lab's clock.

    python -m hagate.agent.fleet --pki DIR --gateway 10.1.1.100:7443 --server-name gw \\
        --prefix fd --first 0 --count 2500 --target 127.0.0.1:8080 --events ev.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from hagate.agent.agent import Agent
from hagate.agent.config import AgentConfig, ClientConfig, LocalService, Reconnect
from hagate.agent.redial import ScheduleKind
from hagate.gateway.protocol import ServiceKind, ServiceSpec
from hagate.net.conn import parse_hostport
from hagate.net.tls import client_context


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """Which devices this process runs and where they dial."""

    pki: Path
    host: str
    port: int
    server_name: str
    prefix: str
    first: int
    count: int
    target: tuple[str, int]
    service: str = "web"
    reconnect: Reconnect = field(default_factory=Reconnect)
    ramp: float = 0.002
    # On a bench the fleet shares the gateway's machine; real devices have CPUs of their own.
    # A positive nice keeps thousands of agents from out-competing the gateway they dial.
    nice: int = 0

    def name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def config(self, index: int) -> AgentConfig:
        bundle = self.pki / "issued" / "device" / self.name(index)
        client = ClientConfig(
            self.host,
            self.port,
            self.server_name,
            bundle / "ca.crt",
            bundle / "cert.pem",
            bundle / "key.pem",
        )
        spec = ServiceSpec(self.service, ServiceKind.HTTP, None, self.target[1])
        return AgentConfig(client, [LocalService(spec, *self.target)], self.reconnect)


class EventLog:
    """Session ups and downs, buffered and flushed every ``interval`` s."""

    def __init__(self, out: TextIO | None, interval: float = 0.5) -> None:
        self.out = out
        self.interval = interval
        self.lines: list[str] = []
        self.up = 0

    def note(self, index: int, up: bool) -> None:
        self.up += 1 if up else -1
        if self.out is not None:
            self.lines.append(f"{time.monotonic():.6f} {index} {'up' if up else 'down'}\n")

    def flush(self) -> None:
        if self.out is not None and self.lines:
            self.out.write("".join(self.lines))
            self.out.flush()
            self.lines.clear()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()


async def run_fleet(spec: FleetSpec, log: EventLog) -> None:
    """Start every agent on a ramp, then serve until cancelled."""
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(log.run())]
    try:
        for index in range(spec.first, spec.first + spec.count):
            cfg = spec.config(index)
            ctx = client_context(cfg.client.cert, cfg.client.key, cfg.client.ca)
            agent = Agent(cfg, ctx)
            agent.on_change = lambda _a, up, i=index: log.note(i, up)
            tasks.append(asyncio.create_task(agent.run()))
            if spec.ramp > 0:
                await asyncio.sleep(spec.ramp)
        await asyncio.Event().wait()
    finally:
        for task in tasks:
            task.cancel()
        log.flush()


def parse_args(argv: list[str]) -> tuple[FleetSpec, Path | None]:
    p = argparse.ArgumentParser(prog="python -m hagate.agent.fleet", description=__doc__)
    p.add_argument("--pki", type=Path, required=True, help="the PKI directory (hagate pki)")
    p.add_argument("--gateway", required=True, help="HOST:PORT of the tunnel port (the VIP)")
    p.add_argument("--server-name", required=True, help="the gateway's TLS name")
    p.add_argument("--prefix", default="fd", help="device names are PREFIX<index>")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--target", default="127.0.0.1:8080", help="the devices' local web service")
    p.add_argument("--schedule", choices=[k.value for k in ScheduleKind], default="steady")
    p.add_argument("--ramp-ms", type=float, default=2.0, help="between agent starts")
    p.add_argument("--events", type=Path, help="append session up/down lines here")
    p.add_argument(
        "--nice", type=int, default=0, help="lower this process's CPU priority (os.nice)"
    )
    args = p.parse_args(argv)
    host, port = parse_hostport(args.gateway)
    target = parse_hostport(args.target)
    reconnect = replace(Reconnect(), schedule=ScheduleKind(args.schedule))
    spec = FleetSpec(
        args.pki,
        host,
        port,
        args.server_name,
        args.prefix,
        args.first,
        args.count,
        target,
        reconnect=reconnect,
        ramp=args.ramp_ms / 1000,
        nice=args.nice,
    )
    return spec, args.events


def main(argv: list[str] | None = None) -> int:
    from hagate.gateway.server import raise_nofile_limit

    spec, events = parse_args(sys.argv[1:] if argv is None else argv)
    raise_nofile_limit()
    if spec.nice > 0:
        os.nice(spec.nice)
    # why sessions end, one line each (stderr: the lab keeps it as the process's log)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("hagate.agent").setLevel(logging.INFO)
    out = events.open("a") if events is not None else None
    log = EventLog(out)

    async def serve() -> None:
        task = asyncio.create_task(run_fleet(spec, log))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(serve())
    finally:
        if out is not None:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
