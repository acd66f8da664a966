"""The console's JSON endpoints (docs/console.md) against a real gateway on loopback."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.console.kit import PASSWORDS, Stack, snapshot, stack, wait_for

API_GETS = ["/api/me", "/api/cluster", "/api/devices", "/api/access", "/api/can", "/api/actions"]


@pytest.fixture
def st(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as s:
        yield s


def test_anonymous_gets_the_page_and_no_data(st: Stack) -> None:
    st.start_agent("dev1")
    status, headers, body = st.request("GET", "/")
    assert status == 200 and b"Log in" in body
    for secret in (b"dev1", b"node-1", b"MASTER", b"10.1.1.100"):
        assert secret not in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for path in [*API_GETS, "/api/events"]:
        status, _, data = st.request("GET", path)
        assert status == 401, path
        assert data == {"error": "log in first"}
    # an action without a session: refused before anything is looked at
    status, _, _ = st.request(
        "POST", "/api/actions/kick", {"device": "dev1"}, {"Origin": st.origin}
    )
    assert status == 401
    assert "dev1" in st.gateway.sessions  # nothing happened


def test_login_cookie_and_roles(st: Stack) -> None:
    status, headers, data = st.request(
        "POST", "/api/login", {"user": "ops", "password": PASSWORDS["ops"]}, {"Origin": st.origin}
    )
    assert status == 200
    assert data["user"] == "password:ops" and data["role"] == "operator" and data["csrf"]
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    status, _, me = st.request("GET", "/api/me", headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and me["role"] == "operator"

    viewer, _ = st.login("viv")
    assert st.request("GET", "/api/me", headers={"Cookie": viewer})[2]["role"] == "viewer"

    # a valid password of someone in neither group: no console for them
    status, _, data = st.request(
        "POST",
        "/api/login",
        {"user": "mallory", "password": PASSWORDS["mallory"]},
        {"Origin": st.origin},
    )
    assert status == 403 and "neither" in data["error"]


def test_login_refused_cross_origin_wrong_type_and_rebinding(st: Stack) -> None:
    good = {"user": "ops", "password": PASSWORDS["ops"]}
    assert st.request("POST", "/api/login", good)[0] == 403  # no Origin
    assert st.request("POST", "/api/login", good, {"Origin": "http://evil.example"})[0] == 403
    status, _, _ = st.request(
        "POST", "/api/login", good, {"Origin": st.origin, "Content-Type": "text/plain"}
    )
    assert status == 415  # a cross-site form cannot send application/json
    # DNS rebinding: a name that is not ours is refused whatever the rest says
    status, _, _ = st.request("GET", "/", host=f"evil.example:{st.port}")
    assert status == 421


def test_login_rate_limited_per_address(st: Stack) -> None:
    for _ in range(5):
        status, _, _ = st.request(
            "POST", "/api/login", {"user": "ops", "password": "guess"}, {"Origin": st.origin}
        )
        assert status == 401
    status, headers, data = st.request(
        "POST", "/api/login", {"user": "ops", "password": PASSWORDS["ops"]}, {"Origin": st.origin}
    )
    assert status == 429, data  # even the right password waits now
    assert int(headers["Retry-After"]) > 0


def test_cluster_view_and_failover_timeline(st: Stack) -> None:
    cookie, _ = st.login("viv")
    status, _, view = st.request("GET", "/api/cluster", headers={"Cookie": cookie})
    assert status == 200
    nodes = {n["name"]: n for n in view["nodes"]}
    inst = nodes["node-1"]["vrrp"]["instances"][0]
    assert inst["state"] == "MASTER" and inst["effective_priority"] == 255
    assert inst["scripts"] == [{"name": "chk_gateway", "status": "ok", "weight": 0}]
    assert inst["last_transition"]["reason"] == "priority 255: address owner"
    assert nodes["node-2"]["vrrp"]["instances"][0]["state"] == "BACKUP"
    assert nodes["node-1"]["gateway"]["ok"] is True
    assert nodes["node-2"]["gateway"] == {"ok": False, "error": None}  # no admin address given
    assert view["masters"] == {"VI_1": "node-1"}

    # node-1's daemon dies; node-2 takes over 0.4 s later
    st.kill_status("node-1")
    time.sleep(0.2)
    at = time.time() + 0.2
    st.snapshots["node-2"] = snapshot("MASTER", 200, at, "BACKUP", "master down interval")

    def failover() -> dict[str, object] | None:
        view = st.request("GET", "/api/cluster", headers={"Cookie": cookie})[2]
        return next((e for e in view["timeline"] if e["kind"] == "failover"), None)

    wait_for(lambda: failover() is not None, 3, "failover in the timeline")
    event = failover()
    assert event is not None
    assert event["from_node"] == "node-1" and event["node"] == "node-2"
    assert event["reason"] == "master down interval"
    assert 0.3 <= float(event["outage_s"]) <= 0.6  # type: ignore[arg-type]
    view = st.request("GET", "/api/cluster", headers={"Cookie": cookie})[2]
    kinds = [e["kind"] for e in view["timeline"]]
    assert "unreachable" in kinds
    assert view["masters"] == {"VI_1": "node-2"}
    assert view["nodes"][0]["vrrp"]["ok"] is False


def test_devices_online_paged_filtered(st: Stack) -> None:
    cookie, _ = st.login("viv")
    st.start_agent("dev1")
    st.start_agent("dev2")
    status, _, data = st.request("GET", "/api/devices", headers={"Cookie": cookie})
    assert status == 200, data
    assert [d["name"] for d in data["devices"]] == ["dev1", "dev2"]
    dev1 = data["devices"][0]
    assert dev1["online"] is True and dev1["node"] == "node-1"
    assert dev1["routes"] == {"web": "dev1.gw.test"}
    assert dev1["services"] == [{"name": "web", "kind": "http", "target_port": st.web_port}]
    assert dev1["age_s"] is not None and dev1["age_s"] < 5
    assert data["nodes"]["node-1"]["online"] == 2

    page1 = st.request("GET", "/api/devices?limit=1", headers={"Cookie": cookie})[2]
    assert [d["name"] for d in page1["devices"]] == ["dev1"] and page1["next"] == "dev1"
    page2 = st.request("GET", "/api/devices?limit=1&after=dev1", headers={"Cookie": cookie})[2]
    assert [d["name"] for d in page2["devices"]] == ["dev2"] and page2["next"] is None
    found = st.request("GET", "/api/devices?q=V2", headers={"Cookie": cookie})[2]
    assert [d["name"] for d in found["devices"]] == ["dev2"]

    st.stop_agent("dev2")
    wait_for(lambda: "dev2" not in st.gateway.sessions, 3, "dev2 gone")
    off = st.request("GET", "/api/devices?status=offline", headers={"Cookie": cookie})[2]
    assert [(d["name"], d["online"]) for d in off["devices"]] == [("dev2", False)]
    bad = st.request("GET", "/api/devices?status=maybe", headers={"Cookie": cookie})
    assert bad[0] == 400


def _user_request(st: Stack, device: str, user: str, password: str) -> int:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    with socket.create_connection(("127.0.0.1", st.gateway.addresses["http"][1]), 5) as s:
        s.sendall(
            f"GET / HTTP/1.1\r\nHost: {device}.gw.test\r\nAuthorization: Basic {auth}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_access_log_and_can(st: Stack) -> None:
    cookie, _ = st.login("viv")
    st.start_agent("dev1")
    assert _user_request(st, "dev1", "ops", PASSWORDS["ops"]) == 200
    assert _user_request(st, "dev1", "viv", PASSWORDS["viv"]) == 403

    def entries(query: str = "") -> list[dict[str, object]]:
        data = st.request("GET", "/api/access" + query, headers={"Cookie": cookie})[2]
        return list(data["entries"])

    wait_for(lambda: len(entries()) >= 2, 3, "two access entries")
    got = {(e["identity"], e["result"] == "ok", e["node"]) for e in entries()}
    assert got == {("password:ops", True, "node-1"), ("password:viv", False, "node-1")}
    assert [e["identity"] for e in entries("?result=denied")] == ["password:viv"]
    assert [e["identity"] for e in entries("?identity=OPS")] == ["password:ops"]

    def can(query: str) -> dict[str, object]:
        status, _, data = st.request("GET", "/api/can?" + query, headers={"Cookie": cookie})
        assert status == 200, data
        return dict(data)

    yes = can("who=password:ops&device=dev1&service=web&route=https")
    assert yes["allowed"] is True and "ops-web" in str(yes["rule"])
    no = can("who=password:viv&device=dev1&service=web&route=https")
    assert no["allowed"] is False and no["status"] == 403
    cert = can("who=user:alice&device=dev9&service=ssh&route=http")
    assert cert["allowed"] is True
    bad = st.request("GET", "/api/can?who=root&device=dev1", headers={"Cookie": cookie})
    assert bad[0] == 400 and "not a principal" in bad[2]["error"]


def test_kick_needs_operator_csrf_and_is_logged(st: Stack) -> None:
    st.start_agent("dev1")
    first = st.gateway.sessions["dev1"].sid
    viewer, viewer_csrf = st.login("viv")
    ops, ops_csrf = st.login("ops")
    body = {"device": "dev1", "node": "node-1"}

    def kick(cookie: str, csrf: str | None, origin: str | None = None) -> int:
        headers = {"Cookie": cookie, "Origin": origin or st.origin}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return st.request("POST", "/api/actions/kick", body, headers)[0]

    assert kick(viewer, viewer_csrf) == 403  # read-only role
    assert kick(ops, None) == 403  # no CSRF token
    assert kick(ops, viewer_csrf) == 403  # somebody else's token
    assert kick(ops, ops_csrf, "http://evil.example") == 403  # cross-origin
    assert st.gateway.sessions["dev1"].sid == first
    assert kick(ops, ops_csrf) == 200
    # the agent comes back by itself with a new session; the node remembers why
    wait_for(
        lambda: "dev1" in st.gateway.sessions and st.gateway.sessions["dev1"].sid != first,
        5,
        "dev1 reconnected",
    )
    audit = [json.loads(x) for x in (st.tmp / "audit.log").read_text().splitlines()]
    assert [(a["user"], a["action"], a["ok"], a.get("refused")) for a in audit] == [
        ("password:viv", "kick", False, "not an operator"),
        ("password:ops", "kick", False, "missing or wrong X-CSRF-Token"),
        ("password:ops", "kick", False, "missing or wrong X-CSRF-Token"),
        ("password:ops", "kick", True, None),  # cross-origin: refused before any session
    ]
    assert audit[3]["device"] == "dev1" and audit[3]["node"] == "node-1"
    actions = st.request("GET", "/api/actions", headers={"Cookie": viewer})[2]["actions"]
    assert len(actions) == 4
    assert kick(ops, ops_csrf) == 200  # the new session
    body["device"] = "nosuch"
    assert kick(ops, ops_csrf) == 404


def test_revoke_token(st: Stack) -> None:
    from hagate.policy import tokenfiles

    _token, claims = tokenfiles.issue(st.tmp / "pki", "carol", [], 600, time.time())
    viewer, viewer_csrf = st.login("viv")
    as_viewer = {"Cookie": viewer, "Origin": st.origin, "X-CSRF-Token": viewer_csrf}
    body = {"jti": claims.jti}
    assert st.request("POST", "/api/actions/revoke-token", body, as_viewer)[0] == 403
    ops, csrf = st.login("ops")
    headers = {"Cookie": ops, "Origin": st.origin, "X-CSRF-Token": csrf}
    assert (
        st.request("POST", "/api/actions/revoke-token", body, headers | {"X-CSRF-Token": "x"})[0]
        == 403
    )
    status, _, data = st.request("POST", "/api/actions/revoke-token", {"jti": claims.jti}, headers)
    assert status == 200 and data["revoked"] == [claims.jti]
    status, _, data = st.request("POST", "/api/actions/revoke-token", {"jti": claims.jti}, headers)
    assert status == 200 and data["already"] is True
    audit = [json.loads(x) for x in (st.tmp / "audit.log").read_text().splitlines()]
    assert [(a["user"], a["ok"], a.get("jti")) for a in audit] == [
        ("password:viv", False, None),  # not an operator
        ("password:ops", False, None),  # wrong CSRF token
        ("password:ops", True, claims.jti),
        ("password:ops", True, claims.jti),
    ]
    assert {a["action"] for a in audit} == {"revoke-token"}


def test_logout_ends_session(st: Stack) -> None:
    cookie, csrf = st.login("viv")
    headers = {"Cookie": cookie, "Origin": st.origin}
    assert st.request("POST", "/api/logout", {}, headers)[0] == 403  # CSRF needed here too
    headers["X-CSRF-Token"] = csrf
    status, resp_headers, _ = st.request("POST", "/api/logout", {}, headers)
    assert status == 200 and "Max-Age=0" in resp_headers["Set-Cookie"]
    assert st.request("GET", "/api/cluster", headers={"Cookie": cookie})[0] == 401


def _sse(st: Stack, cookie: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", st.port), 5)
    head = f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{st.port}\r\nCookie: {cookie}\r\n"
    s.sendall(head.encode() + b"\r\n")
    return s


def _read_until(s: socket.socket, marker: bytes, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_live_updates_and_their_limits(st: Stack) -> None:
    cookie, _ = st.login("viv")
    s = _sse(st, cookie)
    try:
        first = _read_until(s, b"\n\n", 3)
        assert b"200" in first.split(b"\r\n")[0]
        assert b"text/event-stream" in first
        assert b"event: cluster" in first or b"event: cluster" in _read_until(s, b"\n\n", 3)
        changed = time.monotonic()
        st.snapshots["node-2"] = snapshot("FAULT", 0, time.time(), "BACKUP", "script failed")
        data = _read_until(s, b'"FAULT"', 3)
        took = time.monotonic() - changed
        assert b'"FAULT"' in data and took < 1.0, took
        # four streams per session: the fifth is refused
        more = [_sse(st, cookie) for _ in range(3)]
        try:
            for m in more:
                assert b"200" in _read_until(m, b"\r\n", 3)
            fifth = _sse(st, cookie)
            assert b"429" in _read_until(fifth, b"\r\n", 3)
            fifth.close()
        finally:
            for m in more:
                m.close()
    finally:
        s.close()


def test_admin_endpoints_directly(st: Stack) -> None:
    st.start_agent("dev1")
    port = st.admin()[1]
    auth = st.bearer()
    status, _, data = st.request("GET", "/api/summary", headers=auth, port=port)
    assert status == 200 and data["node"] == "node-1" and data["online"] == 1
    assert data["health"]["ok"] is True
    status, _, data = st.request("GET", "/api/devices?q=dev&limit=10", headers=auth, port=port)
    assert status == 200 and data["matched"] == 1 and data["devices"][0]["name"] == "dev1"
    assert st.request("GET", "/api/devices?limit=0", headers=auth, port=port)[0] == 400
    assert st.request("GET", "/api/devices?q=" + "x" * 200, headers=auth, port=port)[0] == 400
    assert st.request("GET", "/api/nope", headers=auth, port=port)[0] == 404
    # rebinding, and a form POST that needs no preflight: both refused, even with the token
    assert st.request("GET", "/api/summary", headers=auth, port=port, host="evil.example")[0] == 421
    form = {"Content-Type": "text/plain", **auth}
    assert st.request("POST", "/api/devices/dev1/kick", {}, form, port=port)[0] == 415
    assert "dev1" in st.gateway.sessions
    kick = "/api/devices/nosuch/kick"
    assert st.request("POST", kick, {"by": "t"}, auth, port=port)[0] == 404
    status, _, data = st.request("POST", "/api/devices/dev1/kick", {"by": "test"}, auth, port=port)
    assert status == 200 and data["kicked"] is True
    # the old health and metrics endpoints are unchanged, and open
    assert st.request("GET", "/healthz", port=port)[0] == 200
    assert st.request("GET", "/metrics", port=port)[0] == 200


def test_a_trickling_client_is_cut(st: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from hagate.console import web

    monkeypatch.setattr(web, "REQUEST_DEADLINE", 0.5)
    with socket.create_connection(("127.0.0.1", st.port), 5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        start = time.monotonic()
        s.settimeout(5)
        for _ in range(20):  # a header line every 0.1 s, never the blank line
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                break
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            while s.recv(4096):
                pass
        took = time.monotonic() - start
    assert took < 1.8, took


def test_user_certificate_logs_in_over_https(st: Stack) -> None:
    import ssl
    import threading

    from hagate.console.web import ConsoleServer

    pki = st.tmp / "pki"
    srv = pki / "issued" / "server" / "gateway"
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(srv / "cert.pem", srv / "key.pem")
    tls.load_verify_locations(pki / "ca.crt")
    tls.verify_mode = ssl.CERT_OPTIONAL
    server = ConsoleServer(("127.0.0.1", 0), st.server.app, tls)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]

    def me(cert: str | None) -> tuple[int, str, object]:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if cert is not None:
            b = pki / "issued" / "user" / cert
            ctx.load_cert_chain(b / "cert.pem", b / "key.pem")
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        try:
            conn.request("GET", "/api/me")
            res = conn.getresponse()
            return res.status, res.headers.get("Set-Cookie") or "", json.loads(res.read())
        finally:
            conn.close()

    try:
        status, cookie, data = me("alice")
        assert status == 200 and data == {
            "user": "user:alice",
            "role": "operator",
            "csrf": data["csrf"],  # type: ignore[index]
        }
        assert "Secure" in cookie and "HttpOnly" in cookie
        again = me("alice")  # no cookie sent back: the same session, not a new one
        assert again[2] == data
        assert me(None)[0] == 401  # no certificate, no cookie: log in first
    finally:
        server.shutdown()
        server.server_close()


def test_logout_ends_live_updates_at_once(st: Stack) -> None:
    cookie, csrf = st.login("viv")
    s = _sse(st, cookie)
    try:
        assert b"event: cluster" in _read_until(s, b"event: cluster", 3)
        headers = {"Cookie": cookie, "Origin": st.origin, "X-CSRF-Token": csrf}
        assert st.request("POST", "/api/logout", {}, headers)[0] == 200
        start = time.monotonic()
        s.settimeout(3)
        with contextlib.suppress(OSError):
            while s.recv(65536):
                pass
        assert time.monotonic() - start < 1.0
    finally:
        s.close()


def test_one_user_cannot_take_every_live_stream(st: Stack) -> None:
    """Four streams per session, eight per user: a viewer's many sessions stop at eight and
    leave the others (an operator) their live updates."""
    from hagate.console.web import STREAMS_PER_USER

    sessions = [st.login("viv")[0] for _ in range(3)]
    opened: list[socket.socket] = []
    try:
        for cookie in sessions:
            for _ in range(4):
                opened.append(_sse(st, cookie))
        answers = [_read_until(s, b"\r\n", 3).split(b"\r\n")[0] for s in opened]
        # (the server's threads take them in any order: count, do not look at which)
        assert sum(b" 200 " in a for a in answers) == STREAMS_PER_USER, answers
        assert sum(b" 429 " in a for a in answers) == 12 - STREAMS_PER_USER, answers
        ops, _ = st.login("ops")
        opened.append(_sse(st, ops))
        assert b" 200 " in _read_until(opened[-1], b"\r\n", 3)
    finally:
        for s in opened:
            s.close()
    wait_for(lambda: st.server.app.streams == 0, 3, "the streams counted closed")
    assert st.server.app.user_streams == {}


def test_one_network_address_cannot_take_every_connection(st: Stack) -> None:
    from hagate.console.web import CONNECTIONS_PER_ADDRESS, MAX_CONNECTIONS

    slots = st.server.slots
    taken = [slots.take("198.51.100.7") for _ in range(CONNECTIONS_PER_ADDRESS + 1)]
    try:
        assert taken == [True] * CONNECTIONS_PER_ADDRESS + [False]
        assert slots.take("198.51.100.8")  # another address still gets in
        slots.give("198.51.100.8")
        assert st.request("GET", "/")[0] == 200  # and loopback (shared by a proxy's users)
    finally:
        for _ in range(CONNECTIONS_PER_ADDRESS):
            slots.give("198.51.100.7")
    assert slots.total == MAX_CONNECTIONS


def test_rate_limited_logins_are_logged_a_line_a_second(
    st: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused guess costs a hash and is logged; once the address waits, its retries cost
    nothing to send, so they are logged at most once a second, with a count."""
    caplog.set_level("WARNING", logger="hagate.console")
    guess = {"user": "ops", "password": "guess"}
    statuses = [st.request("POST", "/api/login", guess, {"Origin": st.origin})[0]
                for _ in range(40)]  # fmt: skip
    assert statuses == [401] * 5 + [429] * 35
    lines = [r.getMessage() for r in caplog.records if "login refused" in r.getMessage()]
    assert len([line for line in lines if "too many" in line]) <= 2, lines
    assert len(lines) <= 7


def test_the_page_is_self_contained() -> None:
    """No build step, no CDN: the page is three files shipped in the package (package data),
    which load nothing but each other; the CSP would refuse anything else in the browser."""
    import re
    import tomllib
    from importlib import resources

    from hagate.console.web import CSP, STATIC

    static = resources.files("hagate.console").joinpath("static")
    names = sorted(p.name for p in static.iterdir() if p.name[0] != ".")
    assert names == sorted(name for name, _ in STATIC.values())
    html = static.joinpath("index.html").read_text()
    refs = [r for r in re.findall(r'(?:src|href)="([^"]*)"', html) if r[:1] != "#"]
    assert refs and set(refs) <= {"/static/app.js", "/static/app.css"}, refs
    for name in names:
        assert not re.search(r"https?://|@import|url\(", static.joinpath(name).read_text()), name
    assert "default-src 'none'" in CSP and "script-src 'self'" in CSP
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "console/static/*" in pyproject["tool"]["setuptools"]["package-data"]["hagate"]
