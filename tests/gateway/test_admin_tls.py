"""The admin listener off loopback: refused at config load (file:line, the key) without a
token, and without ``admin_tls``/``admin_insecure``; over TLS it serves the gateway's server
certificate, the console checks it against the CA, ``/api/*`` answers only over TLS while
``/healthz`` and ``/metrics`` still answer plain HTTP (vrrp_script, Prometheus). The token file
must be owned by the reading user (or root). Listeners bind loopback only: the off-loopback
cases are refused before any socket is made."""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.console.kit import Stack, stack, wait_for

from hagate.cli import main
from hagate.console.nodes import NodeClient, NodeError, NodeTarget, admin_client_context
from hagate.gateway.admin.auth import NEED_TLS
from hagate.gateway.admin.limits import PeerSlots
from hagate.gateway.admin.listener import AdminServer, start_notes
from hagate.gateway.config import (
    ConfigError,
    admin_exposure,
    is_loopback,
    load_gateway_config,
    read_token_file,
)
from hagate.pki.ca import init_ca

HEAD = """domain = "gw.test"

[tls]
ca = "ca.crt"
cert = "c.pem"
key = "k.pem"

[listen]
tunnel = "127.0.0.1:7443"
"""


def _load(tmp_path: Path, listen: str) -> object:
    path = tmp_path / "gateway.toml"
    path.write_text(HEAD + listen)
    return load_gateway_config(path)


def _token(path: Path) -> Path:
    path.write_text(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path


# -- the config load ---------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"])
def test_loopback_needs_neither_token_nor_tls(tmp_path: Path, host: str) -> None:
    cfg = _load(tmp_path, f'admin = "{host}:9180"\n')
    assert cfg.admin is not None and not cfg.admin_tls and not cfg.admin_insecure  # type: ignore[attr-defined]


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "10.0.0.5", "[fd00::5]", "gw1.example"])
def test_off_loopback_without_a_token_is_refused_with_file_and_line(
    tmp_path: Path, host: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, f'http = ""\nadmin = "{host}:9180"\nadmin_tls = true\n')
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'gateway.toml'}:11: [listen] admin: "), msg
    assert "no admin_token_file" in msg and "127.0.0.1" in msg


def test_off_loopback_with_a_token_needs_tls_or_insecure(tmp_path: Path) -> None:
    listen = 'admin = "10.0.0.5:9180"\nadmin_token_file = "t"\n'
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, listen)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'gateway.toml'}:10: [listen] admin: "), msg
    assert "in clear" in msg and "admin_tls = true" in msg and "admin_insecure = true" in msg
    cfg = _load(tmp_path, listen + "admin_tls = true\n")
    assert cfg.admin_tls and not cfg.admin_insecure  # type: ignore[attr-defined]
    cfg = _load(tmp_path, listen + "admin_insecure = true\n")
    assert cfg.admin_insecure and not cfg.admin_tls  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"gateway.toml:13: \[listen\] admin_insecure: "):
        _load(tmp_path, listen + "admin_tls = true\nadmin_insecure = true\n")
    with pytest.raises(ConfigError, match=r"\[listen\] admin_tls: expected bool"):
        _load(tmp_path, listen + 'admin_tls = "yes"\n')


def test_exposure_rules() -> None:
    assert admin_exposure("127.0.0.1", False, False, False) is None
    assert admin_exposure("10.0.0.5", True, True, False) is None
    assert admin_exposure("10.0.0.5", True, False, True) is None
    # no token off loopback: admin_insecure does not help (it only waives the TLS)
    assert admin_exposure("10.0.0.5", False, False, True) is not None
    assert admin_exposure("10.0.0.5", False, True, False) is not None
    assert is_loopback("::1") and is_loopback("127.255.0.1") and not is_loopback("::")


def test_the_listener_itself_refuses_before_binding() -> None:
    """A GatewayConfig made in code (no file) meets the same rule at the listener."""
    with pytest.raises(ConfigError, match=r"\[listen\] admin: 0.0.0.0 is not loopback"):
        AdminServer("0.0.0.0", 0, lambda: {"ok": True}, lambda: "")


def test_start_notes_say_who_can_read() -> None:
    notes = start_notes(("127.0.0.1", 9180), has_token=False, insecure=False)
    assert [lvl for lvl, _ in notes] == [logging.INFO]
    assert "without a token" in notes[0][1] and "every local user" in notes[0][1]
    assert start_notes(("127.0.0.1", 9180), has_token=True, insecure=False) == []
    notes = start_notes(("10.0.0.5", 9180), has_token=True, insecure=True)
    assert [lvl for lvl, _ in notes] == [logging.WARNING] and "in clear" in notes[0][1]


# -- the token file's owner ----------------------------------------------------------------


def test_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = _token(tmp_path / "t")
    me = os.geteuid()
    stranger = 54321 if me != 54321 else 54322
    if me == 0:  # root may give it away for real; root-owned files are accepted (as ssh)
        os.chown(path, stranger, -1)
        with pytest.raises(ConfigError, match=f"owned by uid {stranger}, not by"):
            read_token_file(path)
        assert read_token_file(path, owner=stranger)
    else:
        with pytest.raises(ConfigError, match=f"owned by uid {me}, not by .*uid {stranger}"):
            read_token_file(path, owner=stranger)
        assert read_token_file(path)


# -- connection slots ------------------------------------------------------------------------


def test_slots_per_peer_and_overall_loopback_apart() -> None:
    slots = PeerSlots(total=3, per_peer=2, local_total=4)
    assert slots.take("10.0.0.1") and slots.take("10.0.0.1")
    assert not slots.take("10.0.0.1")  # its own bound
    assert slots.take("10.0.0.2")
    assert not slots.take("10.0.0.3")  # every remote peer together
    # the network is full: the local check still gets in (its own, larger bound)
    assert all(slots.take("127.0.0.1") for _ in range(3)) and slots.take("::1")
    assert not slots.take("127.0.0.1")
    slots.give("10.0.0.1")
    assert slots.take("10.0.0.3")
    slots.give("::1")
    assert slots.take("127.0.0.1")


# -- a real gateway over TLS ----------------------------------------------------------------


@pytest.fixture
def tls_stack(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path, token=True, admin_tls=True) as s:
        yield s


def _https(st: Stack, path: str, headers: dict[str, str]) -> tuple[int, object]:
    ctx = admin_client_context(st.tmp / "pki" / "ca.crt")
    host, port = st.admin()
    conn = http.client.HTTPSConnection(host, port, timeout=5, context=ctx)
    try:
        conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


def test_the_console_talks_https_and_kicks(tls_stack: Stack) -> None:
    st = tls_stack
    st.start_agent("dev1")
    assert st.gateway._admin is not None and st.gateway._admin.tls is not None
    status, data = _https(st, "/api/summary", st.bearer())
    assert status == 200 and data["online"] == 1  # type: ignore[index]
    ops, csrf = st.login("ops")

    def gateway_read() -> bool:
        view = st.request("GET", "/api/cluster", headers={"Cookie": ops})[2]
        node = next(n for n in view["nodes"] if n["name"] == "node-1")
        return node["gateway"]["ok"] is True and node["gateway"]["online"] == 1

    wait_for(gateway_read, 5, "node-1's gateway read by the console over https")
    headers = {"Cookie": ops, "X-CSRF-Token": csrf, "Origin": st.origin}
    status, _, data = st.request("POST", "/api/actions/kick", {"device": "dev1"}, headers)
    assert status == 200 and data["kicked_on"] == ["node-1"], data


def test_plain_http_gets_health_and_metrics_but_no_api(
    tls_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    st = tls_stack
    port = st.admin()[1]
    assert st.request("GET", "/healthz", port=port)[0] == 200
    assert st.request("GET", "/metrics", port=port)[0] == 200
    assert main(["gateway", "check", "--url", f"http://127.0.0.1:{port}/healthz"]) == 0
    with caplog.at_level(logging.WARNING, "hagate.gateway.admin"):
        status, _, data = st.request("GET", "/api/summary", headers=st.bearer(), port=port)
    assert status == 403 and data == {"error": NEED_TLS}
    assert any("plain HTTP (it sent a token in clear)" in r.getMessage() for r in caplog.records)
    status, _, data = st.request("POST", "/api/devices/dev1/kick", {}, st.bearer(), port=port)
    assert status == 403 and data == {"error": NEED_TLS}
    assert _https(st, "/healthz", {})[0] == 200


def test_the_console_checks_the_gateways_certificate(tls_stack: Stack, tmp_path: Path) -> None:
    st = tls_stack
    target = NodeTarget("node-1", st.admin(), None)
    other = tmp_path / "other-ca"
    init_ca(other)
    stranger = NodeClient(target, token=st.token, tls=admin_client_context(other / "ca.crt"))
    with pytest.raises(NodeError, match="TLS: certificate verify failed"):
        stranger.get("/api/summary")
    ca = admin_client_context(st.tmp / "pki" / "ca.crt")
    wrong_name = NodeClient(target, token=st.token, tls=ca, server_name="other.example")
    with pytest.raises(NodeError, match="TLS: certificate verify failed: Hostname mismatch"):
        wrong_name.get("/api/summary")
    named = NodeClient(target, token=st.token, tls=ca, server_name="gw.test")
    assert named.get("/api/summary")["node"] == "node-1"
    plain = NodeClient(target, token=st.token)
    with pytest.raises(NodeError, match="403") as info:
        plain.get("/api/summary")
    assert info.value.code == 403


def test_console_cli_checks_its_admin_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["console", "--node", "n1=127.0.0.1:1", "--admin-server-name", "gw.test"]
    assert main(argv) == 2
    assert "--admin-server-name goes with --admin-ca" in capsys.readouterr().err
    argv = ["console", "--node", "n1=127.0.0.1:1", "--admin-ca", str(tmp_path / "nope.crt")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hagate console: --admin-ca {tmp_path / 'nope.crt'}: "), err
    assert "Traceback" not in err


def test_a_tls_handshake_that_never_comes_holds_only_its_slot(tls_stack: Stack) -> None:
    """A client that sends a handshake byte and stalls does not block the next one."""
    import socket

    host, port = tls_stack.admin()
    with socket.create_connection((host, port), timeout=2) as stalled:
        stalled.sendall(b"\x16")
        assert _https(tls_stack, "/healthz", {})[0] == 200
        assert tls_stack.request("GET", "/healthz", port=port)[0] == 200
