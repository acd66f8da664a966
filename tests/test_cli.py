"""The `hagate` entry point: --help explains every command, and each command has --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hagate.cli import build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            return sorted(action.choices)
    return []


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "keepalived" in out
    for name in _commands():
        assert name in out


@pytest.mark.parametrize("command", _commands())
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip()


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hagate", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("hagate ")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out
