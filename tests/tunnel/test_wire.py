"""The wire format on its own: every message round-trips, garbage is only ever WireError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.net.conn import ProtocolError
from hagate.tunnel.connection import Role, Sentinel, TunnelConnection
from hagate.tunnel.wire import (
    BAD_MESSAGE,
    MAX_LINE,
    TOO_LONG,
    Bye,
    Connect,
    Data,
    Hello,
    Message,
    Open,
    Ping,
    Probe,
    Refused,
    ServiceKind,
    ServiceSpec,
    StreamOpen,
    StreamReady,
    StreamRefused,
    Superseded,
    Welcome,
    WireError,
    decode,
    encode,
)

EVERY_MESSAGE: list[Message] = [
    Hello(
        (
            ServiceSpec("web", ServiceKind.HTTP, None, 80),
            ServiceSpec("ssh", ServiceKind.TCP, 20022, 22),
        ),
        3,
    ),
    Welcome("s1", 300, 3000, 2, 30.0, {"web": "dev1.gw.test"}, {"ssh": "port taken"}),
    Hello((), 0, 2, "5f0c9a1e"),
    Ping(),
    Probe(),
    Open("t1"),
    Data("s1", "t1"),
    Data("s1"),
    StreamOpen("web"),
    StreamReady(),
    StreamRefused("web: connection refused", "device_error"),
    Connect("dev1", "ssh"),
    Superseded(4000),
    Superseded(0, same_instance=True),
    Refused("certificate revoked", "revoked", 0),
    Bye(),
]


@pytest.mark.parametrize("msg", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: Message) -> None:
    line = encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == msg
    assert decode(line.rstrip(b"\n")) == msg


def test_v1_lines_still_decode() -> None:
    """What today's (v1) agent and gateway send."""
    assert decode(b'{"ok": true}\n') == StreamReady()
    assert decode(b'{"ok": false, "error": "nope"}') == StreamRefused("nope")
    assert decode(b'{"op":"superseded"}') == Superseded(0)
    assert decode(b'{"op":"error","error":"x"}') == Refused("x", "", 0)
    assert decode(b'{"op":"data","session":"s","token":null}') == Data("s", "")
    hello = decode(b'{"op":"hello","services":[],"reconnects":2}')
    assert hello == Hello((), 2, 1)  # no "v": version 1
    assert encode(Ping()) == b'{"op":"ping"}\n'  # v1 agents compare the line itself


def test_old_agents_read_our_stream_answers() -> None:
    """A v1 gateway reads msg.get("ok"): v2's answers keep it."""
    assert json.loads(encode(StreamReady()))["ok"] is True
    assert json.loads(encode(StreamRefused("x")))["ok"] is False


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff\xfe\x00garbage", "not a JSON line"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"op": 5}', "message has no op"),
        (b'{"op": "teleport"}', "unknown op 'teleport'"),
        (b'{"op": "open"}', "open: token is required"),
        (b'{"op": "open", "token": 7}', "open: token must be a string"),
        (b'{"op": "superseded", "retry_after_ms": -1}', "retry_after_ms must be an integer"),
        (b'{"op": "superseded", "retry_after_ms": true}', "retry_after_ms must be an integer"),
        (b'{"op": "hello", "services": {}}', "hello needs a list"),
        (b'{"op":"hello","services":[{"name":"a","kind":"udp"}]}', "bad service kind 'udp'"),
        (b'{"op":"hello","services":[{"name":"a","kind":"tcp","port":0}]}', "bad service port 0"),
        (
            b'{"op":"hello","services":[{"name":"a","kind":"tcp"},{"name":"a","kind":"http"}]}',
            "unique",
        ),
        (b'{"op":"welcome","session":"s","heartbeat_ms":0,"dead_after_ms":1}', "heartbeat_ms"),
        (
            b'{"op":"welcome","session":"s","heartbeat_ms":1,"dead_after_ms":1,"pool_idle_s":NaN}',
            "pool_idle_s",
        ),
        (
            b'{"op":"welcome","session":"s","heartbeat_ms":1,"dead_after_ms":1,"routes":[]}',
            "routes",
        ),
        (b'{"op":"ready","ok":false}', "ok must be true"),
        (b"[" * 50000, "not a JSON line"),  # deep nesting: RecursionError inside json
    ],
)
def test_garbage_is_a_wire_error(line: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason) as info:
        decode(line)
    assert info.value.status_hint == BAD_MESSAGE
    assert isinstance(info.value, ProtocolError)  # older callers catch this


def test_too_long_has_its_own_status_hint() -> None:
    with pytest.raises(WireError) as info:
        decode(b'{"op":"open","token":"' + b"x" * MAX_LINE + b'"}')
    assert info.value.status_hint == TOO_LONG


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_anything_but_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        decode(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_ops = st.sampled_from(
    [
        "hello",
        "welcome",
        "ping",
        "probe",
        "open",
        "data",
        "stream",
        "ready",
        "refused",
        "connect",
        "superseded",
        "error",
        "bye",
        "x",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    _ops,
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "services",
                "reconnects",
                "session",
                "heartbeat_ms",
                "dead_after_ms",
                "pool",
                "pool_idle_s",
                "routes",
                "errors",
                "token",
                "service",
                "device",
                "ok",
                "error",
                "code",
                "retry_after_ms",
            ]
        ),
        _json,
        max_size=8,
    ),
)
def test_decode_of_json_objects_is_a_message_or_wire_error(
    op: str, fields: dict[str, object]
) -> None:
    """Near-miss objects (right op, fields of any type) reach the field checks."""
    line = json.dumps({"op": op, **fields}).encode()
    try:
        msg = decode(line)
    except WireError:
        return
    assert decode(encode(msg)) == msg  # whatever is accepted is re-encodable as itself


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), st.sampled_from(list(Role)))
def test_the_connection_turns_any_bytes_into_events(chunks: list[bytes], role: Role) -> None:
    """Never an exception out of the core, whatever the peer sends."""
    conn = TunnelConnection(role)
    if role is Role.AGENT:
        conn.send(Hello(()), 0.0)
    for i, chunk in enumerate([*chunks, b""]):
        conn.receive_data(chunk, float(i))
        while not isinstance(conn.next_event(), Sentinel):
            pass
        conn.handle_timer(float(i))
