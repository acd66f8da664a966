"""keepalived.conf lexing: comments, quoted strings, braces and ``include`` with globs.

keepalived reads line by line; ``#`` and ``!`` start a comment anywhere outside quotes;
``{`` and ``}`` are tokens of their own; ``include GLOB`` is resolved relative to the
directory of the including file (keepalived.conf(5), DESCRIPTION).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from hagate.config.findings import Impact, Reporter

INCLUDE_KEYWORDS = frozenset(
    {"include", "includer", "includem", "includew", "includeb", "includea"}
)
MAX_INCLUDE_DEPTH = 32

_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPES["v"] = "\v"


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    quoted: bool = False

    def is_open(self) -> bool:
        return self.text == "{" and not self.quoted

    def is_close(self) -> bool:
        return self.text == "}" and not self.quoted


@dataclass(frozen=True, slots=True)
class Line:
    """The tokens of one non-empty source line."""

    file: str
    number: int
    tokens: tuple[Token, ...]


def split_line(text: str) -> tuple[list[Token], str | None]:
    """Tokens of one line; the second value is an error (unterminated quote) or None."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "#!":
            break
        elif ch in "{}":
            tokens.append(Token(ch))
            i += 1
        else:
            word: list[str] = []
            quoted = False
            while i < n and not text[i].isspace() and text[i] not in "{}":
                ch = text[i]
                if ch in "\"'":
                    end = _closing_quote(text, i + 1, ch)
                    if end < 0:
                        return tokens, f"unterminated {ch} quote"
                    word.append(_unescape(text[i + 1 : end]) if ch == '"' else text[i + 1 : end])
                    quoted = True
                    i = end + 1
                elif ch in "#!" and not word:
                    break
                else:
                    word.append(ch)
                    i += 1
            if word or quoted:
                tokens.append(Token("".join(word), quoted))
            if i < n and text[i] in "#!" and not word:
                break
    return tokens, None


def _closing_quote(text: str, start: int, quote: str) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Lexer:
    """Reads a main file and its includes into :class:`Line` objects, in keepalived's order."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.files: list[Path] = []
        self._stack: list[Path] = []

    def read(self, path: Path) -> list[Line]:
        lines: list[Line] = []
        self._read(path, lines, depth=0, origin=None)
        return lines

    def _read(self, path: Path, out: list[Line], depth: int, origin: Line | None) -> None:
        name = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            why = exc.strerror or str(exc)
            if origin is None:
                self.reporter.error(name, 0, "file", f"cannot read: {why}", Impact.CANNOT_RUN)
            else:
                self.reporter.error(origin.file, origin.number, "include", f"{path}: {why}")
            return
        self.files.append(path)
        self._stack.append(path.resolve())
        try:
            self._lines(path, raw, out, depth)
        finally:
            self._stack.pop()

    def _lines(self, path: Path, raw: bytes, out: list[Line], depth: int) -> None:
        name = str(path)
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            self.reporter.warning(name, 0, "file", "not valid UTF-8; odd bytes replaced")
        for number, source in enumerate(text.splitlines(), start=1):
            tokens, problem = split_line(source)
            if problem:
                # keepalived 2.2.7 crashes (SIGSEGV) on an unterminated quote in a script.
                keyword = tokens[0].text if tokens else "line"
                self.reporter.error(name, number, keyword, problem, Impact.CANNOT_RUN)
            if not tokens:
                continue
            line = Line(name, number, tuple(tokens))
            if tokens[0].text in INCLUDE_KEYWORDS and not tokens[0].quoted:
                self._include(line, out, depth)
            else:
                out.append(line)

    def _include(self, line: Line, out: list[Line], depth: int) -> None:
        keyword = line.tokens[0].text
        if len(line.tokens) < 2:
            self.reporter.error(line.file, line.number, keyword, "needs a file name or glob")
            return
        if depth >= MAX_INCLUDE_DEPTH:
            self.reporter.error(
                line.file, line.number, keyword, f"includes nested over {MAX_INCLUDE_DEPTH} deep"
            )
            return
        base = Path(line.file).parent
        for token in line.tokens[1:]:
            pattern = os.path.join(base, os.path.expanduser(token.text))
            matches = sorted(glob.glob(pattern))
            if not matches:
                if glob.has_magic(pattern):
                    self.reporter.warning(
                        line.file, line.number, keyword, f"{token.text}: no file matches"
                    )
                else:
                    self.reporter.error(
                        line.file, line.number, keyword, f"{token.text}: no such file"
                    )
                continue
            for match in matches:
                target = Path(match)
                if target.resolve() in self._stack:
                    self.reporter.error(
                        line.file, line.number, keyword, f"{match}: includes itself (loop)"
                    )
                    continue
                self._read(target, out, depth + 1, line)
