"""keepalived's script command-line splitting (lib/parser.c alloc_strvec_quoted_escaped)."""

from __future__ import annotations

import pytest

from hagate.daemon.cmdline import CommandLineError, parse_script_value, split_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/bin/true", ("/bin/true",)),
        ("  a   b\tc ", ("a", "b", "c")),
        ('"/bin/check --port 80"', ("/bin/check --port 80",)),
        ("'it''s'", ("its",)),
        ('a"b c"d', ("ab cd",)),
        (r"a\ b", ("a b",)),
        (r'"say \"hi\""', ('say "hi"',)),
        (r"\x41\101\cA\t", ("AA\x01\t",)),
        ("''", ("",)),
        ("", ()),
    ],
)
def test_split_words(text: str, words: tuple[str, ...]) -> None:
    assert split_words(text) == words


@pytest.mark.parametrize("text", ['"unterminated', "'also", "trailing\\"])
def test_split_errors(text: str) -> None:
    with pytest.raises(CommandLineError):
        split_words(text)


def test_quoted_script_is_split_again() -> None:
    cmd = parse_script_value('"/usr/bin/curl -s -o /dev/null http://10.1.1.100/"')
    assert cmd.argv == ("/usr/bin/curl", "-s", "-o", "/dev/null", "http://10.1.1.100/")
    assert cmd.user is None


def test_unquoted_words_after_command_are_user_and_group() -> None:
    cmd = parse_script_value("/etc/keepalived/master.sh nobody nogroup")
    assert cmd.argv == ("/etc/keepalived/master.sh",)
    assert (cmd.user, cmd.group) == ("nobody", "nogroup")


def test_quoted_argument_inside_quoted_command() -> None:
    cmd = parse_script_value("\"/bin/sh -c 'exit 3'\"")
    assert cmd.argv == ("/bin/sh", "-c", "exit 3")


def test_empty_command_rejected() -> None:
    with pytest.raises(CommandLineError):
        parse_script_value('""')
