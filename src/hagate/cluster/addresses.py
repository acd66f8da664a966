"""This node's own IPv4 addresses (which VIPs it holds right now), from /proc/net/fib_trie.

Published in the node's registry record so that `hagate cluster status` shows who *holds*
each VIP, observed, not only who should by the priorities. No netlink, no subprocess: the
kernel's local routing table as text, read in the process's own network namespace.
"""

from __future__ import annotations

from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")


def parse_fib_trie(text: str) -> tuple[str, ...]:
    """Addresses with a ``/32 host LOCAL`` entry, loopback excluded, sorted and unique."""
    found: set[str] = set()
    last = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif stripped.startswith("/32 host LOCAL") and last and not last.startswith("127."):
            found.add(last)
    return tuple(sorted(found, key=lambda a: tuple(int(p) for p in a.split("."))))


def local_addresses(path: Path = FIB_TRIE) -> tuple[str, ...]:
    try:
        return parse_fib_trie(path.read_text())
    except (OSError, ValueError):
        return ()
