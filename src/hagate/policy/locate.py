"""Line numbers for TOML tables and keys: tomllib gives values without positions.

The text is scanned once for table headers (``[groups]``, ``[[rule]]``) and for the
``key =`` lines under each, which is enough for error messages. Lines inside multi-line
strings may be misread; the answer then falls back to the table's header, never to a line
past the end of the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\.|=)""")


@dataclass(slots=True)
class _Table:
    line: int
    keys: dict[str, int] = field(default_factory=dict)


class Locator:
    """Where a table, an element of an array of tables, or a key starts (1-based lines)."""

    def __init__(self, text: str) -> None:
        self._lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        self._tables: dict[str, list[_Table]] = {"": [_Table(1)]}
        current = self._tables[""][0]
        for number, raw in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(raw)
            if header and not raw.lstrip().startswith("#"):
                name = _unquote(header.group(2).strip())
                current = _Table(number)
                tables = self._tables.setdefault(name, [])
                if header.group(1) == "[" and tables:
                    current = tables[0]
                else:
                    tables.append(current)
                continue
            key = _KEY.match(raw)
            if key:
                current.keys.setdefault(_unquote(key.group(1)), number)

    def line(self, table: str = "", index: int = 0, key: str | None = None) -> int:
        tables = self._tables.get(table)
        if not tables:
            return 1
        found = tables[min(index, len(tables) - 1)]
        number = found.keys.get(key, found.line) if key is not None else found.line
        return min(number, self._lines)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name
