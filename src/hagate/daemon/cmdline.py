"""Split a script command line into argv exactly as keepalived 2.2.7 does (no shell).

keepalived re-reads a ``script``/``notify*`` line with quotes and escapes honoured
(lib/parser.c ``alloc_strvec_quoted_escaped``), takes the first word after the keyword as the
command, and splits that word again the same way (lib/notify.c ``set_script_params_array``).
So ``script "/bin/check --port 80"`` runs ``/bin/check`` with two arguments, while an unquoted
``notify_master /bin/x arg`` makes ``arg`` the script *user* (the words after the command
are ``user [group]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hagate.config.lexer import QuoteError, split_quoted

_WHITE = " \t\n\r\f\v"


class CommandLineError(ValueError):
    """A command line keepalived would reject (unmatched quote, trailing backslash)."""


def split_words(text: str) -> tuple[str, ...]:
    """Split ``text`` into words honouring '...' and "..." quotes and backslash escapes."""
    try:
        return tuple(split_quoted(text, cut_nul=False, blanks=_WHITE))
    except QuoteError as exc:
        raise CommandLineError(f"{exc} {text!r}") from None


@dataclass(frozen=True, slots=True)
class ScriptCommand:
    """A parsed script line: the argv to exec and an optional ``user [group]``."""

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None


def parse_script_value(value: str) -> ScriptCommand:
    """Parse what follows the keyword (``script``/``notify_master``...) as keepalived does."""
    outer = split_words(value)
    if not outer:
        raise CommandLineError("no command given")
    argv = split_words(outer[0])
    if not argv:
        raise CommandLineError("no command given")
    user = outer[1] if len(outer) > 1 else None
    group = outer[2] if len(outer) > 2 else None
    return ScriptCommand(argv=argv, user=user, group=group)
