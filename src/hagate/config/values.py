"""Typed values of keyword arguments, with keepalived's ranges; problems become findings."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TypeVar

from hagate.config.findings import Impact, Reporter
from hagate.config.lexer import Token, quoted_words
from hagate.config.parser import Statement

IPAddress = IPv4Address | IPv6Address
T = TypeVar("T")

_TRUE = frozenset({"on", "true", "yes"})
_FALSE = frozenset({"off", "false", "no"})
_ANNOTATION = re.compile(r"^\(.*\)$|^\(|\)$")


class Values:
    """Reads arguments of one statement at a time, reporting against its file and line."""

    def __init__(self, reporter: Reporter) -> None:
        self.r = reporter
        # keepalived vrrp_iprule.c: a virtual_rule without a priority gets the next one
        # down from 16384, per family, in the order the file is read (one load, one count)
        self.next_rule_priority = {4: 16384, 6: 16384}

    def error(self, st: Statement, message: str) -> None:
        self.r.error(st.file, st.line, st.keyword, message)

    def warning(self, st: Statement, message: str) -> None:
        self.r.warning(st.file, st.line, st.keyword, message)

    def first(self, st: Statement, used: int = 1) -> str | None:
        """The first argument (an error if missing); words after ``used`` get a warning."""
        if not st.args:
            # keepalived 2.2.7 stops on a missing parameter ("cannot initialise", exit 2).
            what = "needs a name" if st.block is not None else "needs a value"
            self.r.error(st.file, st.line, st.keyword, what, Impact.CANNOT_RUN)
            return None
        if st.block is None:
            self.extra(st, used)
        return st.args[0].text

    def command_words(self, st: Statement) -> list[str] | None:
        """The words after the keyword as keepalived re-reads script and notify lines:
        ``"`` and ``'`` quotes and backslash escapes; None if it cannot split them."""
        if not st.raw:
            return st.words
        words = quoted_words(st.raw)
        return None if words is None else words[1:]

    def extra(self, st: Statement, used: int, words: list[str] | None = None) -> None:
        rest = (st.words if words is None else words)[used:]
        if not rest:
            return
        text = " ".join(rest)
        if _ANNOTATION.search(rest[0]):
            self.warning(
                st,
                f"'{text}' is an annotation, not keepalived syntax (keepalived ignores "
                "words after the value); remove it",
            )
        else:
            self.warning(st, f"extra words ignored: '{text}'")

    def integer(
        self, st: Statement, text: str, lo: int, hi: int, otherwise: str = ""
    ) -> int | None:
        """An integer in lo..hi; ``otherwise`` says what is used instead when it is not."""
        tail = f"; {otherwise}" if otherwise else ""
        try:
            value = int(text, 10)
        except ValueError:
            self.error(st, f"'{text}' is not a whole number{tail}")
            return None
        if not lo <= value <= hi:
            self.error(st, f"{value} is outside {lo}..{hi}{tail}")
            return None
        return value

    def first_integer(self, st: Statement, lo: int, hi: int, otherwise: str = "") -> int | None:
        """The first argument as an integer in lo..hi, or None once the error is reported."""
        text = self.first(st)
        return None if text is None else self.integer(st, text, lo, hi, otherwise)

    def first_seconds(self, st: Statement, lo: float, hi: float) -> float | None:
        """The first argument as seconds in lo..hi, or None once the error is reported."""
        text = self.first(st)
        return None if text is None else self.seconds(st, text, lo, hi)

    def seconds(self, st: Statement, text: str, lo: float, hi: float) -> float | None:
        try:
            value = float(text)
        except ValueError:
            self.error(st, f"'{text}' is not a number of seconds")
            return None
        if not math.isfinite(value) or not lo <= value <= hi:
            self.error(st, f"{text} is outside {lo:g}..{hi:g} seconds")
            return None
        return value

    def flag(self, st: Statement) -> bool | None:
        """A keyword that takes an optional <BOOL> (keepalived.conf(5), PARAMETER SYNTAX)."""
        if not st.args:
            return True
        word = st.args[0].text.lower()
        self.extra(st, 1)
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        self.error(st, f"'{st.args[0].text}' is not one of on|off|true|false|yes|no")
        return None

    def address(self, st: Statement, text: str) -> IPAddress | None:
        try:
            return ip_address(text)
        except ValueError:
            self.error(st, f"'{text}' is not an IP address")
            return None

    def block(self, st: Statement, used: int = 0) -> list[Statement]:
        """The statement's block; a missing block is an error and reads as empty.

        ``used`` is how many words before the ``{`` are meaningful (1 for a block's name).
        """
        if st.block is None:
            self.error(st, "needs a { ... } block")
            return []
        if len(st.args) > used:
            self.extra(st, used)
        return st.block

    def entries(self, st: Statement) -> list[Statement]:
        """A list block's lines (addresses, names), each re-keyed to the block's keyword
        so findings read ``virtual_ipaddress: '10.0.0.300' is not an IP address``."""
        out: list[Statement] = []
        for entry in self.block(st):
            self.no_block(entry)
            head = Token(entry.keyword)
            out.append(Statement(st.keyword, [head, *entry.args], entry.file, entry.line))
        return out

    def parsed(
        self, st: Statement, parse: Callable[[Values, Statement], T | None]
    ) -> tuple[T, ...]:
        """Each entry of a list block read by ``parse``; an entry it refuses (None, with its
        finding already reported) is dropped, as keepalived drops the line."""
        return tuple(x for entry in self.entries(st) if (x := parse(self, entry)) is not None)

    def no_block(self, st: Statement) -> None:
        if st.block is not None:
            self.error(st, "takes no { ... } block; its contents are ignored")
