"""Replay tunnel transcripts (transcripts/*.txt) and render what the core did, exactly.

A transcript drives one pure object on a virtual clock (times in seconds):

    # comments are kept when regenerating
    conn role=agent|gateway [kind=control|data|connect]
    at 0 send {"op":"hello","services":[]}        (a JSON line: decoded, then conn.send())
      < {"op":"hello","v":2,"services":[],"reconnects":0}    (bytes to write)
      > Welcome session='s1' ...                   (events, in order)
      = HELLO timer none                           (state and the next deadline)
    at 0.3 recv {"op":"ping"}                      (a line from the peer, newline added)
    at 0.3 recv-bytes b'{"op"'                     (exact bytes, a Python literal)
    at 0.3 recv-long 70000                         (that many 'x' bytes, no newline)
    at 0.3 recv-eof | timer

    registry [twin_window_s=120] [base_ms=1000] [cap_ms=60000]
    at 0 attach dev1 serial=7                      (SessionRegistry.attach)
    at 5 detach dev1 s1 | expire-pool dev1 | ...   (see apply_registry)

    standbys [max_addresses=64]                    (StandbyTable)
    at 0 park dev1 sb1 10.1.1.100 | drop sb1 | promote 10.1.1.100 limit=2

``python tests/tunnel/transcript.py --regen [file ...]`` rewrites the expected lines after a
deliberate change of behaviour: review the diff.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hagate.tunnel.connection import (
    Kind,
    LocalProtocolError,
    Role,
    Sentinel,
    State,
    TunnelConnection,
)
from hagate.tunnel.registry import (
    BACKOFF_BASE_MS,
    BACKOFF_CAP_MS,
    TWIN_WINDOW_S,
    SessionRegistry,
    StandbyTable,
)
from hagate.tunnel.wire import ServiceSpec, WireError, decode

HERE = Path(__file__).parent / "transcripts"


@dataclass
class Step:
    comments: list[str]
    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Transcript:
    header: list[str]
    subject: str
    steps: list[Step]


def parse(text: str) -> Transcript:
    header: list[str] = []
    subject = ""
    steps: list[Step] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            (pending if subject else header).append(line)
        elif line.startswith(("conn", "registry", "standbys")) and not subject:
            subject = line
        elif line.startswith("at "):
            steps.append(Step(pending, line))
            pending = []
        elif line.startswith((">", "<", "=", "!")):
            steps[-1].expected.append(line)
        else:
            raise ValueError(f"unparsable line: {raw!r}")
    return Transcript(header, subject, steps)


def fmt_time(t: float | None) -> str:
    if t is None:
        return "none"
    return f"{t:.6f}".rstrip("0").rstrip(".")


def _value(v: Any) -> str:
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, tuple) and all(isinstance(s, ServiceSpec) for s in v):
        return ",".join(_service(s) for s in v) or "-"
    if isinstance(v, dict) or (hasattr(v, "items") and not isinstance(v, str)):
        return "{" + ",".join(f"{k}:{x}" for k, x in sorted(dict(v).items())) + "}"
    if isinstance(v, float):
        return fmt_time(v)
    return repr(v)


def _service(s: ServiceSpec) -> str:
    parts = [s.name, s.kind.value]
    if s.port is not None or s.target_port is not None:
        parts.append(str(s.port or ""))
    if s.target_port is not None:
        parts.append(str(s.target_port))
    return ":".join(parts)


def describe(obj: Any) -> str:
    """``Type field=value ...`` for any event or action dataclass."""
    name = type(obj).__name__
    if not dataclasses.is_dataclass(obj):
        return name
    fields = " ".join(f"{f.name}={_value(getattr(obj, f.name))}" for f in dataclasses.fields(obj))
    return f"{name} {fields}".rstrip()


def _show_bytes(data: bytes) -> list[str]:
    out = []
    for line in data.splitlines():
        out.append(f"< {line.decode('ascii', 'backslashreplace')}")
    return out


# ------------------------------------------------------------------------- connections


def make_conn(subject: str) -> TunnelConnection:
    opts = dict(w.split("=", 1) for w in subject.split()[1:])
    kind = Kind(opts["kind"]) if "kind" in opts else None
    return TunnelConnection(Role(opts["role"]), kind)


def apply_conn(conn: TunnelConnection, line: str) -> list[str]:
    _, when, verb, *rest = line.split(" ", 3)
    now = float(when)
    arg = rest[0] if rest else ""
    out: list[str] = []
    if verb == "send":
        try:
            msg = decode(arg.encode())
            out += _show_bytes(conn.send(msg, now))
        except (LocalProtocolError, WireError) as exc:
            out.append(f"! {type(exc).__name__}: {exc}")
    elif verb == "recv":
        conn.receive_data(arg.encode() + b"\n", now)
    elif verb == "recv-bytes":
        conn.receive_data(ast.literal_eval(arg), now)
    elif verb == "recv-long":
        conn.receive_data(b"x" * int(arg), now)
    elif verb == "recv-eof":
        conn.receive_data(b"", now)
    elif verb == "timer":
        out += _show_bytes(conn.handle_timer(now))
    else:
        raise ValueError(f"unknown input {verb!r}")
    while True:
        event = conn.next_event()
        if isinstance(event, Sentinel):
            if event is Sentinel.PAUSED and conn.state is not State.CLOSED:
                out.append("> PAUSED")
            break
        out.append(f"> {describe(event)}")
    tail = ""
    if conn.state is not State.CLOSED and conn.trailing_data:
        data = conn.trailing_data
        tail = f" trailing={data!r}" if conn.raw_input else f" buffered={len(data)}"
    out.append(f"= {conn.state.value} timer {fmt_time(conn.get_timer())}{tail}")
    return out


# --------------------------------------------------------------------------- registry


def make_registry(subject: str) -> SessionRegistry:
    opts = dict(w.split("=", 1) for w in subject.split()[1:])
    return SessionRegistry(
        twin_window_s=float(opts.get("twin_window_s", TWIN_WINDOW_S)),
        base_ms=int(opts.get("base_ms", BACKOFF_BASE_MS)),
        cap_ms=int(opts.get("cap_ms", BACKOFF_CAP_MS)),
    )


def apply_registry(reg: SessionRegistry, line: str) -> list[str]:
    _, when, verb, *args = line.split()
    now = float(when)
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    words = [a for a in args if "=" not in a]
    if verb == "attach":
        device, session = words
        actions = reg.attach(
            device, int(opts.get("serial", "1")), session, now, opts.get("instance", "")
        )
    elif verb == "detach":
        actions = reg.detach(words[0], now)
    elif verb == "expire":
        reg.expire(now)
        actions = []
    else:
        raise ValueError(f"unknown input {verb!r}")
    out = [f"> {describe(a)}" for a in actions]
    out.append(
        f"= sessions {len(reg)} remembered {reg.remembered()} superseded {reg.superseded}"
        f" twins {reg.twins} refused {reg.twins_refused}"
    )
    return out


# --------------------------------------------------------------------------- standbys


def make_standbys(subject: str) -> StandbyTable:
    opts = dict(w.split("=", 1) for w in subject.split()[1:])
    return StandbyTable(int(opts.get("max_addresses", "64")))


def apply_standbys(table: StandbyTable, line: str) -> list[str]:
    _, _when, verb, *args = line.split()
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    words = [a for a in args if "=" not in a]
    out: list[str] = []
    if verb == "park":
        device, standby, address = words
        out += [f"> {describe(a)}" for a in table.park(device, standby, address)]
    elif verb == "drop":
        out.append(f"> dropped {table.drop(words[0])}")
    elif verb == "promote":
        out += [f"> {describe(a)}" for a in table.promote(words[0], int(opts.get("limit", "99")))]
    else:
        raise ValueError(f"unknown input {verb!r}")
    out.append(
        f"= standbys {len(table)} addresses {','.join(table.addresses()) or '-'}"
        f" replaced {table.replaced} promoted {table.promoted}"
    )
    return out


# ---------------------------------------------------------------------------- replay


def replay(t: Transcript) -> list[Step]:
    out: list[Step] = []
    if t.subject.startswith("conn"):
        conn = make_conn(t.subject)
        for step in t.steps:
            out.append(Step(step.comments, step.line, apply_conn(conn, step.line)))
    elif t.subject.startswith("standbys"):
        table = make_standbys(t.subject)
        for step in t.steps:
            out.append(Step(step.comments, step.line, apply_standbys(table, step.line)))
    else:
        reg = make_registry(t.subject)
        for step in t.steps:
            out.append(Step(step.comments, step.line, apply_registry(reg, step.line)))
    return out


def render(t: Transcript, steps: list[Step]) -> str:
    lines = [*t.header, t.subject, ""]
    for step in steps:
        lines += [*step.comments, step.line, *(f"  {e}" for e in step.expected)]
    return "\n".join(lines) + "\n"


def _regen(paths: list[Path]) -> None:
    for path in paths:
        t = parse(path.read_text())
        path.write_text(render(t, replay(t)))
        print(f"regenerated {path.name}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--regen"]:
        sys.exit("usage: transcript.py --regen [transcript.txt ...]")
    _regen([Path(p) for p in sys.argv[2:]] or sorted(HERE.glob("*.txt")))
