"""The admin listener's token: ``[listen] admin_token_file`` guards every ``/api/*`` request
(401 without the right bearer token); without one the reads stay open and the kick is refused
(403, naming the key); ``/healthz`` and ``/metrics`` stay open either way. A token file others
may read stops the listener (and so the gateway) from starting. All on loopback."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.console.kit import Stack, stack, wait_for

from hagate.cli import main
from hagate.gateway.admin.auth import NEED_TOKEN, AdminAuth
from hagate.gateway.admin.listener import AdminServer
from hagate.gateway.config import ConfigError, parse_gateway_config, read_token_file

KICK = "/api/devices/dev1/kick"


def _token_file(path: Path, mode: int = 0o600, text: str | None = None) -> Path:
    path.write_text(text if text is not None else secrets.token_urlsafe(32) + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def open_stack(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path, token=False) as s:
        yield s


@pytest.fixture
def token_stack(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path, token=True) as s:
        yield s


# -- pure ---------------------------------------------------------------------------------


def test_auth_check_without_a_token_reads_only() -> None:
    auth = AdminAuth(None)
    assert auth.check("GET", None) is None
    assert auth.check("POST", None) == (403, NEED_TOKEN)
    assert auth.check("POST", "Bearer anything") == (403, NEED_TOKEN)
    assert "[listen] admin_token_file" in NEED_TOKEN


def test_auth_check_with_a_token() -> None:
    auth = AdminAuth(b"s3cret-s3cret-s3cret")
    for method in ("GET", "POST"):
        assert auth.check(method, "Bearer s3cret-s3cret-s3cret") is None
        assert auth.check(method, "bearer  s3cret-s3cret-s3cret ") is None  # scheme: any case
        assert auth.check(method, None) == (401, "missing Authorization: Bearer <admin token>")
        assert auth.check(method, "Bearer ")[0] == 401  # type: ignore[index]
        assert auth.check(method, "Basic czNjcmV0") == (
            401,
            "missing Authorization: Bearer <admin token>",
        )
        assert auth.check(method, "Bearer s3cret-s3cret-s3creT") == (401, "wrong admin token")
        assert auth.check(method, "Bearer s3cret") == (401, "wrong admin token")
        assert auth.check(method, "Bearer s3cret-s3cret-s3cret-") == (401, "wrong admin token")
        assert auth.check(method, "Bearer \u00e9t\u00e9") == (401, "wrong admin token")


# -- the token file -----------------------------------------------------------------------


def test_token_file_is_read_when_only_its_owner_may(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    path = _token_file(tmp_path / "t", 0o600, f"{token}\n")
    assert read_token_file(path) == token
    path.chmod(0o400)
    assert read_token_file(path) == token


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o620, 0o602])
def test_token_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _token_file(tmp_path / "t", mode)
    with pytest.raises(ConfigError) as info:
        read_token_file(path)
    msg = str(info.value)
    assert f"mode {mode:04o}" in msg and f"chmod 600 {path}" in msg
    assert msg.startswith(f"[listen] admin_token_file {path}: ")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "at least 16 characters"),
        ("short\n", "at least 16 characters"),
        ("two words in the one token\n", "without spaces"),
        ("a" * 5000, "without spaces"),
        ("caf\u00e9-caf\u00e9-caf\u00e9-caf\u00e9", "ASCII"),
    ],
)
def test_token_file_content_is_checked(tmp_path: Path, text: str, why: str) -> None:
    path = _token_file(tmp_path / "t", 0o600, text)
    with pytest.raises(ConfigError, match=why):
        read_token_file(path)


def test_token_file_missing_or_a_symlink(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_token_file(tmp_path / "nope")
    real = _token_file(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(ConfigError, match=str(tmp_path / "link")):
        read_token_file(tmp_path / "link")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_token_file(Path("/dev/null"))


def test_config_key_is_a_path_relative_to_the_file(tmp_path: Path) -> None:
    data = {
        "domain": "gw.test",
        "tls": {"ca": "ca.crt", "cert": "c.pem", "key": "k.pem"},
        "listen": {"admin_token_file": "admin.token"},
    }
    assert parse_gateway_config(data, tmp_path).admin_token_file == tmp_path / "admin.token"
    del data["listen"]
    assert parse_gateway_config(data, tmp_path).admin_token_file is None
    data["listen"] = {"admin_token_file": 7}
    with pytest.raises(ConfigError, match=r"\[listen\] admin_token_file: expected str"):
        parse_gateway_config(data, tmp_path)


def test_the_listener_does_not_start_with_a_readable_token(tmp_path: Path) -> None:
    path = _token_file(tmp_path / "t", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        AdminServer("127.0.0.1", 0, lambda: {"ok": True}, lambda: "", token_file=path)
    path.chmod(0o600)
    server = AdminServer("127.0.0.1", 0, lambda: {"ok": True}, lambda: "", token_file=path)
    server.httpd.server_close()


def test_the_console_refuses_a_readable_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _token_file(tmp_path / "t", 0o640)
    argv = ["console", "--node", "n1=127.0.0.1:1", "--admin-token-file", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hagate console: --admin-token-file {path}: mode 0640"), err
    assert "Traceback" not in err


# -- a real gateway -----------------------------------------------------------------------


def test_without_a_token_reads_work_and_the_kick_is_refused(
    open_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    st = open_stack
    st.start_agent("dev1")
    port = st.admin()[1]
    status, _, data = st.request("GET", "/api/summary", port=port)
    assert status == 200 and data["online"] == 1
    assert st.request("GET", "/api/devices", port=port)[0] == 200
    assert st.request("GET", "/api/access", port=port)[0] == 200
    with caplog.at_level(logging.WARNING, "hagate.gateway.admin"):
        status, _, data = st.request("POST", KICK, {"by": "local user"}, port=port)
    assert status == 403 and "[listen] admin_token_file" in data["error"]
    assert "dev1" in st.gateway.sessions
    assert any(
        "403 POST /api/devices/dev1/kick from 127.0.0.1" in r.getMessage() for r in caplog.records
    )
    # a token does not help when the gateway has none: actions stay off
    status, _, _ = st.request("POST", KICK, {}, st.bearer("made-up-token-made-up"), port=port)
    assert status == 403 and "dev1" in st.gateway.sessions
    # the console says why its kick failed (not "no session")
    ops, csrf = st.login("ops")
    headers = {"Cookie": ops, "X-CSRF-Token": csrf, "Origin": st.origin}
    status, _, data = st.request("POST", "/api/actions/kick", {"device": "dev1"}, headers)
    assert status == 502 and "admin_token_file" in data["error"], data
    assert "dev1" in st.gateway.sessions
    assert st.request("GET", "/healthz", port=port)[0] == 200
    assert st.request("GET", "/metrics", port=port)[0] == 200


def test_with_a_token_every_api_request_needs_it(
    token_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    st = token_stack
    st.start_agent("dev1")
    port = st.admin()[1]
    wrong = st.bearer("x" + (st.token or "")[1:])
    with caplog.at_level(logging.WARNING, "hagate.gateway.admin"):
        for path in ("/api/summary", "/api/devices", "/api/access", "/api/nope"):
            for headers in ({}, wrong, {"Authorization": f"Basic {st.token}"}):
                status, res, data = st.request("GET", path, headers=headers, port=port)
                assert status == 401, (path, headers, data)
                assert res["WWW-Authenticate"] == 'Bearer realm="hagate-admin"'
                assert st.token not in str(data)
        for headers in ({}, wrong):
            assert st.request("POST", KICK, {"by": "x"}, headers, port=port)[0] == 401
    assert "dev1" in st.gateway.sessions
    assert any("401 GET /api/summary from 127.0.0.1" in r.getMessage() for r in caplog.records)
    assert st.gateway._admin is not None and st.gateway._admin.refusals.refused == 14
    # /healthz and /metrics stay open (vrrp_script, Prometheus)
    assert st.request("GET", "/healthz", port=port)[0] == 200
    assert st.request("GET", "/metrics", port=port)[0] == 200
    # the right token reads and kicks
    status, _, data = st.request("GET", "/api/summary", headers=st.bearer(), port=port)
    assert status == 200 and data["online"] == 1
    status, _, data = st.request("POST", KICK, {"by": "test"}, st.bearer(), port=port)
    assert status == 200 and data["kicked"] is True
    wait_for(lambda: "dev1" not in st.gateway.sessions, 5, "dev1 kicked")


def test_the_console_sends_the_token(token_stack: Stack) -> None:
    st = token_stack
    st.start_agent("dev1")
    ops, csrf = st.login("ops")
    headers = {"Cookie": ops, "X-CSRF-Token": csrf, "Origin": st.origin}

    def gateway_read() -> bool:
        view = st.request("GET", "/api/cluster", headers={"Cookie": ops})[2]
        node = next(n for n in view["nodes"] if n["name"] == "node-1")
        return node["gateway"]["ok"] is True and node["gateway"]["online"] == 1

    wait_for(gateway_read, 5, "node-1's gateway read by the console (with the token)")
    status, _, data = st.request("POST", "/api/actions/kick", {"device": "dev1"}, headers)
    assert status == 200 and data["kicked_on"] == ["node-1"], data


def test_refusals_are_logged_at_most_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    from hagate.gateway.admin.auth import RefusalLog

    book = RefusalLog()
    with caplog.at_level(logging.WARNING, "hagate.gateway.admin"):
        for i in range(5):
            book.note(100.0 + i * 0.1, f"refused {i}")
        book.note(101.5, "refused late")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["admin: refused 0", "admin: refused late (and 4 more refused)"]
    assert book.refused == 6


def test_kit_token_file_is_private(token_stack: Stack) -> None:
    mode = os.stat(token_stack.tmp / "admin.token").st_mode & 0o777
    assert mode == 0o600
