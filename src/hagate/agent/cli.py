"""`hagate agent` (on a device) and `hagate connect` (on a user's machine)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser(
        "agent",
        help="run a device agent: expose local services through the gateway",
        description=(
            "Dial out to the gateway (mutual TLS with the device certificate), keep the "
            "session alive, reconnect on any loss, and serve stream requests."
        ),
    )
    agent.add_argument("-c", "--config", type=Path, default=Path("agent.toml"))
    agent.add_argument("-v", "--verbose", action="store_true")
    agent.set_defaults(func=_agent)

    con = sub.add_parser(
        "connect",
        help="a local port that reaches one device's service through the gateway",
        description=(
            "Listen on a local port; every connection to it reaches DEVICE's SERVICE (a service "
            "name such as ssh, or the device-side port such as 22) through the gateway, "
            "authenticated with your user certificate."
        ),
    )
    con.add_argument("target", metavar="DEVICE:SERVICE", help="e.g. dev1:ssh or dev1:22")
    where = con.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", help="local port, or HOST:PORT (127.0.0.1)")
    where.add_argument(
        "--stdio",
        action="store_true",
        help="one stream on stdin/stdout (ssh -o ProxyCommand='hagate connect %%h:22 --stdio')",
    )
    con.add_argument("-c", "--config", type=Path, help="a TOML file with gateway and [tls]")
    con.add_argument("--gateway", help="HOST:PORT of the gateway's tunnel port")
    con.add_argument("--server-name", help="TLS name of the gateway (default: its host)")
    con.add_argument("--ca", type=Path)
    con.add_argument("--cert", type=Path)
    con.add_argument("--key", type=Path)
    con.add_argument("-v", "--verbose", action="store_true")
    con.set_defaults(func=_connect)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _agent(args: argparse.Namespace) -> int:
    from hagate.agent.agent import run_agent
    from hagate.agent.config import load_agent_config
    from hagate.gateway.config import ConfigError
    from hagate.net.loop import event_loop_factory

    _logging(args.verbose)
    try:
        cfg = load_agent_config(args.config)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run_agent(cfg))
    except ConfigError as exc:
        print(f"hagate agent: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # unreadable certificate files
        print(f"hagate agent: {exc}", file=sys.stderr)
        return 1
    return 0


def _connect(args: argparse.Namespace) -> int:
    from hagate.agent.config import DEFAULT_TUNNEL_PORT, ClientConfig, load_client_config
    from hagate.agent.connect import Forwarder
    from hagate.gateway.config import ConfigError
    from hagate.net.conn import parse_hostport

    _logging(args.verbose)
    device, sep, service = args.target.rpartition(":")
    if not sep or not device or not service:
        print("hagate connect: expected DEVICE:SERVICE, e.g. dev1:ssh", file=sys.stderr)
        return 2
    try:
        if args.config:
            client = load_client_config(args.config)
        else:
            if not (args.gateway and args.ca and args.cert and args.key):
                raise ConfigError("give -c FILE, or all of --gateway, --ca, --cert and --key")
            host, port = parse_hostport(args.gateway, DEFAULT_TUNNEL_PORT)
            client = ClientConfig(host, port, host, args.ca, args.cert, args.key)
        if args.server_name:
            client = ClientConfig(
                client.host, client.port, args.server_name, client.ca, client.cert, client.key
            )
        lhost, lport = "", 0
        if args.local:
            local = args.local if ":" in args.local else f"127.0.0.1:{args.local}"
            lhost, lport = parse_hostport(local)
    except (ConfigError, ValueError) as exc:
        print(f"hagate connect: {exc}", file=sys.stderr)
        return 2

    if args.stdio:
        from hagate.agent.connect import ConnectError, run_stdio

        try:
            return asyncio.run(run_stdio(client, device, service))
        except (ConnectError, OSError, ValueError) as exc:
            print(f"hagate connect: {exc}", file=sys.stderr)
            return 1

    async def main() -> None:
        fwd = Forwarder(client, device, service, lhost, lport)
        fwd.start()
        print(
            f"{fwd.address[0]}:{fwd.address[1]} -> {device}:{service} via "
            f"{client.host}:{client.port}",
            flush=True,
        )
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except (OSError, ValueError) as exc:
        print(f"hagate connect: {exc}", file=sys.stderr)
        return 1
    return 0
