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

_WHITE = " \t\n\r\f\v"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


class CommandLineError(ValueError):
    """A command line keepalived would reject (unmatched quote, trailing backslash)."""


def split_words(text: str) -> tuple[str, ...]:
    """Split ``text`` into words honouring '...' and "..." quotes and backslash escapes."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _WHITE:
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i, ch = _escape(text, i + 1)
                word.append(ch)
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
                i += 1
                continue
            if c in "'\"":
                quote = c
                i += 1
                continue
            if c in _WHITE:
                break
            word.append(c)
            i += 1
        if quote:
            raise CommandLineError(f"missing terminating {quote} in {text!r}")
        words.append("".join(word))
    return tuple(words)


def _escape(text: str, i: int) -> tuple[int, str]:
    """Decode the escape starting after a backslash at ``i``; return (next index, char)."""
    n = len(text)
    if i >= n:
        raise CommandLineError(f"missing escape character at end of {text!r}")
    c = text[i]
    hexdigits = "0123456789abcdefABCDEF"
    if c == "x" and i + 1 < n and text[i + 1] in hexdigits:
        j = i + 1
        value = 0
        while j < n and text[j] in hexdigits:
            value = ((value << 4) | int(text[j], 16)) & 0xFF  # a C char wraps
            j += 1
        return j, chr(value)
    if c == "c" and i + 1 < n:
        return i + 2, chr(ord(text[i + 1]) & 0x1F)
    if "0" <= c <= "7":
        value = 0
        j = i
        while j < n and j < i + 3 and "0" <= text[j] <= "7":
            value = (value << 3) + int(text[j])
            j += 1
        return j, chr(value & 0xFF)
    return i + 1, _SIMPLE_ESCAPES.get(c, c)


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
