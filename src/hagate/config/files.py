"""Reading config files without ever blocking: regular files only, sizes bounded.

keepalived 2.2.7 (lib/parser.c check_glob_file) reads only regular, non-executable files:
a directory, FIFO, device or executable file is skipped with a message. hagate does the
same, and checks *before* reading: the file is opened with O_NONBLOCK (so opening a FIFO
cannot hang) and ``fstat`` of the open descriptor decides, so a file swapped between the
check and the read is still refused. Reads stop at the size limit.

Include patterns are globs relative to the including file's directory with glibc's
GLOB_BRACE (``{a,b}``), which Python's glob lacks; it is expanded here, bounded.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from hagate.config.limits import Limits


@dataclass(frozen=True, slots=True)
class FileRead:
    """The bytes of one file, or why it was not read (``data`` None)."""

    data: bytes | None
    problem: str = ""
    identity: tuple[int, int] = (0, 0)  # (st_dev, st_ino): each file is read once


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refusal(st: os.stat_result) -> str:
    if not stat.S_ISREG(st.st_mode):
        return f"{_kind(st.st_mode)}, not a regular file; keepalived skips it"
    if st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        return "executable; keepalived skips executable config files"
    return ""


def read_file(path: Path, max_bytes: int) -> FileRead:
    """Read ``path`` if it is a regular non-executable file of at most ``max_bytes``."""
    try:
        first = os.stat(path)
    except (OSError, ValueError) as exc:
        return FileRead(None, _why(exc))
    refused = _refusal(first)
    if refused:
        return FileRead(None, refused)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as exc:
        return FileRead(None, _why(exc))
    try:
        st = os.fstat(fd)
        refused = _refusal(st)
        if refused:
            return FileRead(None, refused)
        if st.st_size > max_bytes:
            return FileRead(None, f"{st.st_size} bytes: over the {max_bytes} byte limit")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                return FileRead(None, f"grew over the {max_bytes} byte limit while read")
        return FileRead(b"".join(chunks), "", (st.st_dev, st.st_ino))
    except OSError as exc:
        return FileRead(None, _why(exc))
    finally:
        os.close(fd)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def expand_braces(pattern: str, limit: int) -> list[str] | None:
    """glibc GLOB_BRACE: ``a{b,c}d`` -> ``abd``, ``acd`` (nested allowed); None if over limit.

    Like glibc, a ``\\`` escapes the next character and an unbalanced ``{`` is literal.
    """
    out: list[str] = []
    todo = [pattern]
    while todo:
        text = todo.pop()
        span = _first_brace(text)
        if span is None:
            out.append(text)
            if len(out) > limit:
                return None
            continue
        start, end, parts = span
        for part in reversed(parts):
            todo.append(text[:start] + part + text[end + 1 :])
        if len(todo) + len(out) > limit:
            return None
    return out


def _first_brace(text: str) -> tuple[int, int, list[str]] | None:
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth = 0
            parts: list[str] = []
            last = i + 1
            j = i
            while j < n:
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        parts.append(text[last:j])
                        return i, j, parts
                elif c == "," and depth == 1:
                    parts.append(text[last:j])
                    last = j + 1
                j += 1
            return None  # unbalanced: literal
        i += 1
    return None


@dataclass(frozen=True, slots=True)
class Matches:
    """The files one include pattern names, or why it was refused."""

    paths: list[str]
    problem: str = ""  # set when the pattern is refused
    magic: bool = False  # had wildcards (no match is then not an error for plain include)


def match_include(pattern: str, base: Path, limits: Limits) -> Matches:
    """Files an ``include`` pattern names, sorted per brace alternative as glob(3) does."""
    if "\0" in pattern:
        return Matches([], "a NUL byte in the file name")
    alternatives = expand_braces(pattern, limits.max_brace_alternatives)
    if alternatives is None:
        return Matches([], f"more than {limits.max_brace_alternatives} {{...}} alternatives")
    found: list[str] = []
    magic = len(alternatives) > 1
    for alt in alternatives:
        full = alt if os.path.isabs(alt) else os.path.join(base, alt)
        if glob.has_magic(full):
            magic = True
            hits: list[str] = []
            for hit in glob.iglob(full):
                hits.append(hit)
                if len(found) + len(hits) > limits.max_glob_matches:
                    return Matches([], f"matches more than {limits.max_glob_matches} files")
            found += sorted(hits)
        elif os.path.lexists(full):
            found.append(full)
    return Matches(found, "", magic)
