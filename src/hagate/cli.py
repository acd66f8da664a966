"""The `hagate` command: one entry point, each subcommand a thin call into one package.

Every package that offers subcommands has a ``cli`` module with ``register(subparsers)``;
each subcommand sets ``func`` (taking the parsed namespace, returning an exit code) with
``set_defaults``. A package that is not installed or importable simply adds nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hagate import __version__

if TYPE_CHECKING:
    import argparse

# Order is the order in `hagate --help`.
_SUBCOMMAND_MODULES = (
    "hagate.daemon.cli",  # hagate vrrp
    "hagate.config.cli",  # hagate check
    "hagate.simulate.cli",  # hagate simulate
    "hagate.gateway.cli",  # hagate gateway
    "hagate.agent.cli",  # hagate agent, hagate connect
    "hagate.pki.cli",  # hagate pki
    "hagate.policy.cli",  # hagate policy, hagate token
    "hagate.cluster.cli",  # hagate cluster
    "hagate.lab.cli",  # hagate lab
    "hagate.console.cli",  # hagate console
)
# Commands whose start-up time matters: `hagate vrrp ...` imports only its own module (a
# restarting node must be in BACKUP within tens of milliseconds, not after every package's
# imports). `hagate --help` still lists every command.
_ALONE = {"vrrp": "hagate.daemon.cli"}


def build_parser(modules: Sequence[str] = _SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    import argparse  # not on `hagate vrrp`'s start path (see _fast_args)

    parser = argparse.ArgumentParser(
        prog="hagate",
        description=(
            "Active-standby HA for an IoT remote-access gateway. A VRRP daemon that reads "
            "keepalived.conf and forms one cluster with keepalived, a tunnel gateway for "
            "device agents, and a network-namespace lab that shows it all failing over."
        ),
        epilog="Run 'hagate COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"hagate {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def _fast_args(module: str | None, argv: Sequence[str]) -> Any:
    """``hagate vrrp``'s own argv reading when it needs no argparse (None: use argparse)."""
    if module != "hagate.daemon.cli":
        return None
    from hagate.daemon.cli import fast_args

    return fast_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    alone = _ALONE.get(argv[0]) if argv else None
    args = _fast_args(alone, argv[1:])
    if args is None:
        parser = build_parser((alone,) if alone else _SUBCOMMAND_MODULES)
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
    func = args.func
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
