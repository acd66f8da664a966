"""`hagate vrrp`'s argparse-free start (daemon/cli.fast_args) reads argv as argparse does."""

from __future__ import annotations

import pytest

from hagate.cli import build_parser
from hagate.daemon.cli import fast_args

SAME = [
    [],
    ["-f", "n1.conf"],
    ["--use-file", "n1.conf", "--run-dir", "/run/hagate/n1"],
    ["--use-file=n1.conf", "--run-dir=/run/x", "--log-level", "debug"],
    ["-f", "a.conf", "-f", "b.conf"],  # the last one wins
    ["-f", "status"],  # a value, not the subcommand
    ["-f", "", "--metrics", "127.0.0.1:9650", "--tmp-dir", "/tmp/k"],
    ["--signum", "JSON"],
    ["--log-level=warning", "--metrics=[::1]:9650"],
]
TO_ARGPARSE = [
    ["status"],
    ["--help"],
    ["-h"],
    ["-fn1.conf"],
    ["-f=n1.conf"],
    ["--use-file="],
    ["--use", "n1.conf"],
    ["-f"],
    ["-f", "-x"],
    ["--log-level", "INFO"],
    ["--run-dir", "/r", "status", "--json"],
    ["--", "-f", "x"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_same_namespace_as_argparse(argv: list[str]) -> None:
    fast = fast_args(argv)
    assert fast is not None
    parsed = build_parser(("hagate.daemon.cli",)).parse_args(["vrrp", *argv])
    assert vars(fast) == vars(parsed)


@pytest.mark.parametrize("argv", TO_ARGPARSE, ids=" ".join)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert fast_args(argv) is None
