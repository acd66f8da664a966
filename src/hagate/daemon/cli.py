"""`hagate vrrp`: the VRRP daemon, and `hagate vrrp status`."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
DEFAULT_RUN_DIR = "/run/hagate"
LOG_LEVELS = ("debug", "info", "warning", "error")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import argparse

    vrrp = sub.add_parser(
        "vrrp",
        help="run the VRRP daemon (reads keepalived.conf), or show its status",
        description=(
            "Run the VRRP daemon in the foreground: it reads a keepalived.conf, elects a "
            "master with its peers (hagate or keepalived 2.2.7, VRRPv2/v3, multicast or "
            "unicast), holds the virtual IPs while master and announces them with gratuitous "
            "ARP / unsolicited NA. Logs go to stderr, one line per state change with its "
            "reason. SIGTERM/SIGINT: stop (a master hands over at once), SIGHUP: reload the "
            "config in place (masters stay masters, backups backups, unless the new settings "
            "demand otherwise; a bad config is refused), SIGUSR1/SIGUSR2/SIGJSON: write "
            "keepalived.data/.stats/.json as keepalived does."
        ),
        epilog=(
            "Examples:\n"
            "  hagate vrrp -f /etc/keepalived/keepalived.conf\n"
            "  hagate vrrp -f n1.conf --run-dir /run/hagate/n1 --metrics 127.0.0.1:9650\n"
            "  hagate vrrp status --run-dir /run/hagate/n1 --json\n"
            "Several daemons can share a host (one per network namespace) with one "
            "--run-dir each. When HAGATE_LAB_NETNS is set the daemon only runs inside that "
            "network namespace."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vrrp.add_argument(
        "-f",
        "--use-file",
        dest="config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"keepalived.conf to run (default {DEFAULT_CONFIG})",
    )
    _run_dir(vrrp)
    vrrp.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log verbosity on stderr (default info)",
    )
    vrrp.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="also serve the status as Prometheus text at http://HOST:PORT/metrics",
    )
    vrrp.add_argument(
        "--tmp-dir",
        metavar="DIR",
        help="where SIGUSR1/SIGUSR2/SIGJSON write keepalived.data/.stats/.json "
        "(default: $TMPDIR if absolute, else /tmp, as keepalived)",
    )
    vrrp.add_argument(
        "--signum",
        metavar="NAME",
        help="print the number of keepalived's signal NAME (RELOAD, DATA, STATS, STOP, JSON) "
        "and exit, as 'keepalived --signum' does: kill -s $(hagate vrrp --signum=JSON) PID",
    )
    vrrp.set_defaults(func=_run_daemon)
    vsub = vrrp.add_subparsers(title="vrrp commands", metavar="VRRPCMD")
    status = vsub.add_parser(
        "status",
        help="show the state of a running daemon",
        description=(
            "Per instance: state, base and effective priority, current master, last "
            "transition and its reason, counters (adverts in/out, discards by reason, "
            "GARPs sent) and tracked script states."
        ),
    )
    _run_dir(status)
    fmt = status.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the raw JSON snapshot")
    fmt.add_argument(
        "--prometheus", action="store_true", help="print the Prometheus text exposition"
    )
    status.set_defaults(func=_status)


# `hagate vrrp` with nothing but these options starts without argparse: importing it and
# building the parser is ~5 ms of a start that must stay under 150 ms (issue 12). Each
# option as argparse takes it (value in the next word, or --long=value; the last one wins);
# anything else (help, status, an abbreviation, -fFILE, a value starting with '-', an
# unknown --log-level) returns None and goes to argparse: the same result or its error.
_FAST_OPTIONS = {
    "-f": "config",
    "--use-file": "config",
    "--run-dir": "run_dir",
    "--log-level": "log_level",
    "--metrics": "metrics",
    "--tmp-dir": "tmp_dir",
    "--signum": "signum",
}


def fast_args(argv: Sequence[str]) -> SimpleNamespace | None:
    """The namespace argparse would give for ``hagate vrrp ARGV``, or None to ask it."""
    values: dict[str, Any] = {
        "config": DEFAULT_CONFIG,
        "run_dir": DEFAULT_RUN_DIR,
        "log_level": "info",
        "metrics": None,
        "tmp_dir": None,
        "signum": None,
    }
    words = iter(argv)
    for word in words:
        option, eq, value = word.partition("=")
        dest = _FAST_OPTIONS.get(option)
        if dest is None:
            return None
        if eq:
            if not option.startswith("--") or not value:
                return None
        else:
            following = next(words, None)
            if following is None or following.startswith("-"):
                return None
            value = following
        values[dest] = value
    if values["log_level"] not in LOG_LEVELS:
        return None
    return SimpleNamespace(**values, func=_run_daemon)


def _run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run-dir",
        default=DEFAULT_RUN_DIR,
        metavar="DIR",
        help=f"directory for the pid file and status socket (default {DEFAULT_RUN_DIR})",
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("pyroute2").setLevel(logging.WARNING)  # its debug is per message


def _run_daemon(args: argparse.Namespace | SimpleNamespace) -> int:
    if args.signum is not None:
        return _signum(args.signum)
    # Start-up allocates (imports, the config model, plans) and frees almost nothing: the
    # collector's passes over it are pure cost on the path to the first election. Off until
    # the daemon runs; then what start-up made is frozen out of every later pass too.
    gc.disable()
    from hagate.daemon.driver import Daemon, Options, StartError
    from hagate.daemon.status import parse_host_port

    _setup_logging(args.log_level)
    log = logging.getLogger("hagate.vrrp")
    metrics = None
    if args.metrics:
        try:
            metrics = parse_host_port(args.metrics)
        except ValueError as exc:
            print(f"hagate vrrp: --metrics: {exc}", file=sys.stderr)
            return 2
    tmp_dir = Path(args.tmp_dir) if args.tmp_dir else None
    options = Options(Path(args.config), Path(args.run_dir), metrics, tmp_dir)
    daemon = Daemon(options)
    daemon.on_started = _collect_from_now_on
    try:
        return asyncio.run(daemon.run())
    except StartError as exc:
        log.error("%s", exc)
        return 1


def _collect_from_now_on() -> None:
    gc.freeze()
    gc.enable()


def _signum(name: str) -> int:
    from hagate.daemon.monitor import SIGNUMS

    number = SIGNUMS.get(name.upper())
    if number is None:
        print(f"hagate vrrp: unknown signal name {name!r}", file=sys.stderr)
        return 1
    print(int(number))
    return 0


def _status(args: argparse.Namespace) -> int:
    from hagate.daemon.exporter import metrics_text
    from hagate.daemon.status import StatusError, format_text, prometheus_text, query

    try:
        snap = query(Path(args.run_dir))
    except StatusError as exc:
        print(f"hagate vrrp status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snap, indent=2, sort_keys=True))
    elif args.prometheus:
        sys.stdout.write(metrics_text(snap, prometheus_text))
    else:
        sys.stdout.write(format_text(snap))
    return 0
