"""Bounds on what loading a keepalived.conf may cost, so any file loads quickly.

A daemon reloads its config on SIGHUP; a FIFO, ``/dev/zero``, a glob that fans out or a
million nested braces must give a finding within a bounded time and memory, never a hang.
keepalived 2.2.7's own grammar nests blocks at most five deep and its lines are at most 1023
bytes (lib/parser.h MAXBUF), so these limits only refuse what no real config contains.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one config load may read and keep (files, bytes, nesting, findings)."""

    max_file_bytes: int = 16 * MiB  # one file (main or included)
    max_total_bytes: int = 64 * MiB  # every file read for one config
    max_files: int = 1024  # files read for one config
    max_include_depth: int = 32  # include inside include inside ...
    max_glob_matches: int = 1024  # files one include pattern may match
    max_brace_alternatives: int = 256  # GLOB_BRACE expansions of one include pattern
    max_block_depth: int = 64  # nested { } blocks
    max_statements: int = 1_000_000  # a 10 MB keepalived.conf has about 500,000
    max_findings: int = 1000  # findings kept; the rest are counted in one summary


DEFAULT_LIMITS = Limits()

# keepalived reads lines with fgets(buf, MAXBUF=1024): a longer line is read as several.
KEEPALIVED_LINE_BYTES = 1023
