"""keepalived.conf lexing exactly as keepalived 2.2.7 does it (lib/parser.c read_line).

keepalived reads a file with ``fgets`` into a 1024-byte buffer, so:

* only ``\\n`` ends a line (``\\r`` at the end is dropped; ``\\v \\f \\r`` inside are
  blanks between words; ``\\x1c``-``\\x1e``, NEL, U+2028/9 are ordinary characters);
* a line over 1023 bytes is read as several lines;
* a NUL byte ends the line: the rest of it is never seen.

``decomment`` drops leading and trailing blanks (space, tab) and everything from the first
``#`` or ``!`` outside double quotes, *even inside a word* (``51#c`` is ``51``); ``\\#`` and
``\\!`` are literal. A line starting ``@ID`` is kept only when ID is this host's config id
(the short hostname), ``@^ID`` only when it is not. ``include`` takes the rest of the line as
one glob. Then every ``{`` or ``}`` outside double quotes is cut out as a line of its own, and
each piece is split into words at blanks (space, tab, ``\\f \\r \\v``) with ``"..."`` a word
of its own (no escapes). ``script`` and ``notify*`` lines are re-read with quotes (``"`` and
``'``) and backslash escapes (:func:`quoted_words`, keepalived's alloc_strvec_quoted_escaped).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from hagate.config.files import match_include, read_file
from hagate.config.findings import Impact, Reporter
from hagate.config.limits import DEFAULT_LIMITS, KEEPALIVED_LINE_BYTES, Limits

INCLUDE_KEYWORDS = frozenset(
    {"include", "includer", "includem", "includew", "includeb", "includea"}
)
# Kept for callers of the old name; the bound now lives in Limits.
MAX_INCLUDE_DEPTH = DEFAULT_LIMITS.max_include_depth

BLANKS = " \t\f\r\v"  # keepalived WHITE_SPACE_STR (\n cannot occur inside a line)
_C_ISSPACE = " \t\n\v\f\r"
_SPECIAL = re.compile(r'[!#"\\]')
# A line with none of these needs no decomment, and str.split() splits it exactly at
# keepalived's blanks (it also splits at \x1c-\x1f and Unicode spaces: those go the slow way).
_SPECIAL_OR_SPACE = re.compile(
    '[!#"\\\\\0\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
)
_BRACES = re.compile(r"([{}])")
_LONG_LINE = re.compile(rb"[^\n]{%d}" % (KEEPALIVED_LINE_BYTES + 1))
_WORDS = re.compile(r'"[^"]*"|[^ \t\f\r\v"]+|"')
_BLANK_RUN = re.compile(r"[ \t\f\r\v]+")
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
_DEFINITION = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*(\{[^}]*\})?\s*=")
_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPES["v"] = "\v"


class Token(NamedTuple):
    """One word (a tuple: a config has millions of them, and they are shared)."""

    text: str
    quoted: bool = False

    def is_open(self) -> bool:
        return self.text == "{" and not self.quoted

    def is_close(self) -> bool:
        return self.text == "}" and not self.quoted


OPEN = Token("{")
CLOSE = Token("}")


class Line(NamedTuple):
    """One piece keepalived hands its keyword parser: ``OPEN`` or ``CLOSE`` alone, or words
    (never a brace among them: the lexer cuts braces out)."""

    file: str
    number: int
    tokens: tuple[Token, ...]
    raw: str = ""  # the piece's text, for quoted_words() (script and notify lines)


def decomment(text: str) -> tuple[str, bool]:
    """keepalived's decomment(): the line without comments and outer blanks.

    The second value is True for an unterminated double quote.
    """
    text = text.lstrip(" \t")
    if _SPECIAL.search(text) is None:
        return text.rstrip(" \t"), False
    parts: list[str] = []
    start = 0
    quote = False
    cont = False
    skip: int | None = None  # where the comment starts, in the joined parts
    kept = 0  # characters in parts so far
    i = 0
    n = len(text)
    while True:
        m = _SPECIAL.search(text, i)
        if m is None:
            break
        p = m.start()
        ch = text[p]
        if ch == '"':
            if skip is None:
                quote = not quote
            i = p + 1
            continue
        if ch == "\\":
            if p + 1 < n:
                if not quote and text[p + 1] in "#!":
                    parts.append(text[start:p])  # drop the backslash
                    kept += p - start
                    start = p + 1
                    i = p + 2
                else:
                    i = p + 2
                continue
            parts.append(text[start:p])  # a trailing backslash: continuation mark
            kept += p - start
            start = n
            cont = True
            break
        if not quote and skip is None:
            skip = kept + (p - start)
        i = p + 1
    if start < n:
        parts.append(text[start:])
    out = "".join(parts)
    if skip is not None:
        out = out[:skip]
    out = out.rstrip(" \t")
    if cont:
        out += "\\"
    return out, quote


def split_words(text: str, cache: dict[str, Token] | None = None) -> tuple[list[Token], bool]:
    """keepalived's alloc_strvec_r(): words at blanks, ``"..."`` one word (no escapes).

    The second value is True when a ``"`` has no partner; words up to it are returned.
    ``cache`` shares one Token per distinct word (keywords repeat thousands of times).
    """
    if '"' not in text:
        if cache is None:
            return [Token(w) for w in _BLANK_RUN.split(text) if w], False
        return [cache.get(w) or _cached(cache, w) for w in _BLANK_RUN.split(text) if w], False
    tokens: list[Token] = []
    for m in _WORDS.finditer(text):
        word = m.group()
        if word == '"':
            return tokens, True
        if word[0] == '"':
            tokens.append(Token(word[1:-1], True))
        else:
            tokens.append(Token(word))
    return tokens, False


def _cached(cache: dict[str, Token], word: str) -> Token:
    token = cache[word] = Token(word)
    return token


class QuoteError(ValueError):
    """A line keepalived's quoting refuses: an unterminated quote, a backslash at the end."""


def split_quoted(text: str, *, cut_nul: bool = True, blanks: str = BLANKS) -> list[str]:
    """keepalived's alloc_strvec_quoted_escaped(): ``"`` and ``'`` quotes, backslash escapes.

    A NUL made by an escape ends its word (``cut_nul``), as keepalived's strndup does. The one
    splitter for config lines and for script command lines; raises QuoteError.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in blanks:
            i += 1
        if i >= n:
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    raise QuoteError("missing escape character at end of")
                i, ch = _escape(text, i + 1)
                word.append(ch)
            elif quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
                i += 1
            elif c in "'\"":
                quote = c
                i += 1
            elif c in blanks:
                break
            else:
                word.append(c)
                i += 1
        if quote:
            raise QuoteError(f"missing terminating {quote} in")
        joined = "".join(word)
        words.append(joined.split("\0", 1)[0] if cut_nul else joined)
    return words


def quoted_words(text: str, cut_nul: bool = True) -> list[str] | None:
    """:func:`split_quoted`, or None when keepalived refuses the line."""
    try:
        return split_quoted(text, cut_nul=cut_nul)
    except QuoteError:
        return None


def _escape(text: str, i: int) -> tuple[int, str]:
    """Decode the escape after a backslash at ``i`` (C's rules); (next index, char)."""
    c = text[i]
    n = len(text)
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
    return i + 1, _ESCAPES.get(c, c)


def config_id() -> str:
    """keepalived's default config id: the hostname up to its first dot."""
    return os.uname().nodename.split(".", 1)[0]


def _include_keyword(piece: str) -> str | None:
    """keepalived is_include(): ``include`` or ``includeX`` followed by a blank."""
    if not piece.startswith("include") or len(piece) < 8:
        return None
    if piece[7] in _C_ISSPACE:
        return "include"
    if piece[7] in "rmwba" and len(piece) > 8 and piece[8] in _C_ISSPACE:
        return piece[:8]
    return None


class Lexer:
    """Reads a main file and its includes into :class:`Line` objects, in keepalived's order.

    Every file is read at most once (a second include of it is skipped with a finding) and
    all reading is bounded by :class:`Limits`.
    """

    def __init__(
        self, reporter: Reporter, limits: Limits = DEFAULT_LIMITS, host_id: str | None = None
    ) -> None:
        self.reporter = reporter
        self.limits = limits
        self.host_id = config_id() if host_id is None else host_id
        self.files: list[Path] = []
        self._stack: list[tuple[int, int]] = []
        self._seen: dict[tuple[int, int], str] = {}
        self._total = 0

        self._cache: dict[str, Token] = {}

    def read(self, path: Path) -> list[Line]:
        return list(self.lines(path))

    def lines(self, path: Path) -> Iterator[Line]:
        """The lines of ``path`` and its includes, as they are read (nothing is held)."""
        return self._read(path, depth=0, origin=None)

    def _read(self, path: Path, depth: int, origin: Line | None) -> Iterator[Line]:
        name = str(path)
        r = self.reporter
        budget = min(self.limits.max_file_bytes, self.limits.max_total_bytes - self._total)
        result = read_file(path, max(budget, 0))
        if result.data is None:
            problem = result.problem
            if "limit" in problem and budget < self.limits.max_file_bytes:
                problem += f" (all files together may have {self.limits.max_total_bytes} bytes)"
            if origin is None:
                r.error(name, 0, "file", f"cannot read: {problem}", Impact.CANNOT_RUN)
            else:
                keyword = origin.tokens[0].text if origin.tokens else "include"
                r.error(origin.file, origin.number, keyword, f"{path}: {problem}", Impact.OTHER)
            return
        identity = result.identity
        if identity in self._stack:
            assert origin is not None
            r.error(origin.file, origin.number, "include", f"{path}: includes itself (loop)")
            return
        if identity in self._seen:
            assert origin is not None
            r.error(
                origin.file,
                origin.number,
                "include",
                f"{path}: already read (from {self._seen[identity]}); hagate reads each file "
                "once, this include is skipped",
                Impact.OTHER,
            )
            return
        if len(self.files) >= self.limits.max_files:
            assert origin is not None
            r.error(
                origin.file,
                origin.number,
                "include",
                f"{path}: more than {self.limits.max_files} files; not read",
                Impact.CANNOT_RUN,
            )
            return
        self._total += len(result.data)
        self._seen[identity] = f"{origin.file}:{origin.number}" if origin else name
        self.files.append(path)
        self._stack.append(identity)
        try:
            yield from self._lines(path, result.data, depth)
        finally:
            self._stack.pop()

    def _lines(self, path: Path, raw: bytes, depth: int) -> Iterator[Line]:
        name = str(path)
        out: list[Line] = []
        includes: list[tuple[int, str, str]] = []
        cache = self._cache
        special = _SPECIAL_OR_SPACE.search
        for number, text in self._texts(name, raw):
            if special(text) is None:
                words = text.split()
                if not words:
                    continue
                if "{" not in text and "}" not in text:
                    first = words[0]
                    if first[0] not in "@$~" and first[:7] != "include":
                        tokens = tuple([cache.get(w) or _cached(cache, w) for w in words])
                        yield Line(name, number, tokens, text)
                        continue
                elif self._braces(name, number, text, out):
                    yield from out
                    out.clear()
                    continue
            self._line(name, number, text, out, includes)
            if out:
                yield from out
                out.clear()
            if includes:
                for at, keyword, pattern in includes:
                    yield from self._include(name, at, keyword, pattern, depth)
                includes.clear()

    def _texts(self, name: str, raw: bytes) -> Iterator[tuple[int, str]]:
        """(line number, text) of each line keepalived reads, without its final ``\\r``s."""
        if b"\0" not in raw and _LONG_LINE.search(raw) is None:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                self.reporter.warning(name, 0, "file", "not valid UTF-8; odd bytes replaced")
            for number, line in enumerate(text.split("\n"), start=1):
                if line:
                    yield number, line.rstrip("\r")
            return
        bad_utf8 = False
        for number, physical in enumerate(raw.split(b"\n"), start=1):
            if not physical:
                continue
            for chunk in self._chunks(name, number, physical):
                try:
                    line = chunk.decode("utf-8")
                except UnicodeDecodeError:
                    line = chunk.decode("utf-8", errors="replace")
                    bad_utf8 = True
                yield number, line.rstrip("\r")
        if bad_utf8:
            self.reporter.warning(name, 0, "file", "not valid UTF-8; odd bytes replaced")

    def _braces(self, name: str, number: int, text: str, out: list[Line]) -> bool:
        """Fast path for a plain line with braces; False (nothing added) if it needs more."""
        cache = self._cache
        lines: list[Line] = []
        for part in _BRACES.split(text):
            if part == "{":
                lines.append(Line(name, number, (OPEN,), part))
            elif part == "}":
                lines.append(Line(name, number, (CLOSE,), part))
            else:
                words = part.split()
                if not words:
                    continue
                first = words[0]
                if first[0] in "@$~" or first[:7] == "include":
                    return False
                tokens = tuple([cache.get(w) or _cached(cache, w) for w in words])
                lines.append(Line(name, number, tokens, part.strip()))
        out.extend(lines)
        return True

    def _chunks(self, name: str, number: int, physical: bytes) -> list[bytes]:
        """keepalived's fgets(1024) pieces of a line, each cut at its first NUL."""
        r = self.reporter
        chunks = [physical]
        if len(physical) > KEEPALIVED_LINE_BYTES:
            r.error(
                name,
                number,
                "line",
                f"{len(physical)} bytes: keepalived reads a line in pieces of "
                f"{KEEPALIVED_LINE_BYTES} bytes, each as a line of its own (so does "
                "hagate); split it",
                Impact.OTHER,
            )
            size = KEEPALIVED_LINE_BYTES
            chunks = [physical[i : i + size] for i in range(0, len(physical), size)]
        if b"\0" in physical:
            r.error(
                name,
                number,
                "line",
                "NUL byte: keepalived ignores the rest of the line (so does hagate)",
                Impact.OTHER,
            )
            chunks = [c.split(b"\0", 1)[0] for c in chunks]
        return chunks

    def _line(
        self,
        name: str,
        number: int,
        text: str,
        out: list[Line],
        includes: list[tuple[int, str, str]],
    ) -> None:
        piece, open_quote = decomment(text)
        if open_quote:
            self.reporter.error(name, number, _first_word(piece), 'unterminated " quote')
        while piece:
            piece = self._directives(name, number, piece)
            if not piece:
                return
            keyword = _include_keyword(piece)
            if keyword is not None:
                pattern = piece[8 if keyword == "include" else 9 :].lstrip(" \t")
                includes.append((number, keyword, pattern))
                return
            piece, rest = _cut_brace(piece)
            open_quote = self._emit(name, number, piece, out, quiet=open_quote)
            piece = rest

    def _directives(self, name: str, number: int, piece: str) -> str:
        """``@ID`` host selection and the ``$`` / ``~SEQ`` features hagate refuses."""
        r = self.reporter
        if piece[0] == "@":
            reverse = piece.startswith("@^")
            ofs = 2 if reverse else 1
            m = re.search(r"[ \t]", piece[ofs:])
            if m is None:
                return ""
            ident = piece[ofs : ofs + m.start()]
            if (ident == self.host_id) == reverse:
                return ""
            return piece[ofs + m.start() :].lstrip(" \t")
        if piece[0] == "$" and _DEFINITION.match(piece):
            r.error(
                name,
                number,
                piece.split("=", 1)[0].strip(),
                "parameter definitions ($NAME=...) are not supported by hagate; "
                "write the values out",
                Impact.CANNOT_RUN,
            )
            return ""
        if piece.startswith(("~SEQ", "~LST")):
            r.error(
                name, number, piece[:4], "~SEQ/~LST are not supported by hagate", Impact.CANNOT_RUN
            )
            return ""
        return piece

    def _emit(self, name: str, number: int, piece: str, out: list[Line], quiet: bool) -> bool:
        """Adds the piece's line; True once a quote problem of this line is reported."""
        if piece == "{":
            out.append(Line(name, number, (OPEN,), piece))
            return quiet
        if piece == "}":
            out.append(Line(name, number, (CLOSE,), piece))
            return quiet
        tokens, unmatched = split_words(piece, self._cache)
        if unmatched and not quiet:
            self.reporter.error(name, number, _first_word(piece), 'unterminated " quote')
            quiet = True
        if tokens:
            out.append(Line(name, number, tuple(tokens), piece))
        return quiet

    def _include(
        self, name: str, number: int, keyword: str, pattern: str, depth: int
    ) -> Iterator[Line]:
        r = self.reporter
        origin = Line(name, number, (Token(keyword),), f"{keyword} {pattern}")
        if not pattern:
            r.error(name, number, keyword, "needs a file name or glob")
            return
        if depth >= self.limits.max_include_depth:
            r.error(
                name,
                number,
                keyword,
                f"includes nested over {self.limits.max_include_depth} deep",
                Impact.CANNOT_RUN,
            )
            return
        matches = match_include(pattern, Path(name).parent, self.limits)
        if matches.problem:
            r.error(name, number, keyword, f"{pattern}: {matches.problem}; not read", Impact.OTHER)
            return
        if not matches.paths:
            hint = ""
            if pattern[0] in "\"'":
                hint = " (keepalived takes quotes in an include as part of the name)"
            if matches.magic:
                r.warning(name, number, keyword, f"{pattern}: no file matches{hint}")
            else:
                r.error(name, number, keyword, f"{pattern}: no such file{hint}")
            return
        for match in matches.paths:
            yield from self._read(Path(match), depth + 1, origin)


def _first_word(piece: str) -> str:
    words = [w for w in _BLANK_RUN.split(piece, 1) if w]
    return words[0] if words else "line"


def _cut_brace(piece: str) -> tuple[str, str]:
    """keepalived: the first ``{``/``}`` outside double quotes starts the next piece."""
    if piece[0] in "{}":
        return piece[0], piece[1:].strip(" \t")
    i = 0
    while True:
        m = _BRACE_OR_QUOTE.search(piece, i)
        if m is None:
            return piece, ""
        p = m.start()
        if piece[p] != '"':
            return piece[:p].rstrip(" \t"), piece[p:].rstrip(" \t")
        close = piece.find('"', p + 1)
        if close < 0:
            return piece, ""
        i = close + 1
