"""The normalised model as plain data (for ``--dump`` and ``--json``)."""

from __future__ import annotations

import dataclasses
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hagate.config.model import Config, Location


def to_data(value: object) -> object:
    """Dataclasses, enums, addresses and paths to JSON-ready values; locations as text."""
    if isinstance(value, Location):
        return str(value) if value.line else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data: dict[str, object] = {}
        for f in dataclasses.fields(value):
            data[f.name] = to_data(getattr(value, f.name))
        for prop in ("family", "unicast", "skew_time", "master_down_interval"):
            if hasattr(type(value), prop) and isinstance(getattr(type(value), prop), property):
                data[prop] = to_data(getattr(value, prop))
        return data
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, IPv4Address | IPv6Address | Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    return value


def dump_text(config: Config) -> str:
    """Indented ``key value`` text, one line per field, every default filled in."""
    lines: list[str] = [f"# {config.path} (normalised by hagate, defaults filled in)"]
    _emit(lines, to_data(config), 0)
    return "\n".join(lines) + "\n"


def _emit(lines: list[str], data: object, depth: int) -> None:
    pad = "    " * depth
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None or value == []:
                lines.append(f"{pad}{key} -")
            elif isinstance(value, dict | list):
                lines.append(f"{pad}{key}:")
                _emit(lines, value, depth + 1)
            else:
                lines.append(f"{pad}{key} {_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                lines.append(f"{pad}-")
                _emit(lines, item, depth + 1)
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
