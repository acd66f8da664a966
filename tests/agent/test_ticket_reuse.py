"""The agent keeps the ticket it resumed with: reused, it still resumes, on either node."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest

from hagate.agent.agent import TICKET_KEEP_S, fresh_ticket
from hagate.net import tickets
from hagate.net.tls import client_context, tunnel_server_context
from hagate.pki.ca import Role, init_ca, issue


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        tickets.self_test()
    except tickets.TicketsUnavailable as exc:
        pytest.skip(f"shared tickets unavailable here: {exc}")
    root = tmp_path_factory.mktemp("ticket-pki")
    init_ca(root)
    issue(root, Role.SERVER, "gateway", dns=["localhost"])
    issue(root, Role.DEVICE, "dev1")
    return root


def contexts(root: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, ssl.SSLContext]:
    srv = root / "issued" / "server" / "gateway"
    dev = root / "issued" / "device" / "dev1"

    def node() -> ssl.SSLContext:
        return tunnel_server_context(
            srv / "cert.pem", srv / "key.pem", root / "ca.crt", cluster="gw.test"
        )

    return node(), node(), client_context(dev / "cert.pem", dev / "key.pem", root / "ca.crt")


def handshake(
    srv: ssl.SSLContext, cli: ssl.SSLContext, session: ssl.SSLSession | None
) -> ssl.SSLObject:
    """The client's side of a handshake over memory BIOs, its ticket taken in."""
    sin, sout, cin, cout = (ssl.MemoryBIO() for _ in range(4))
    s = srv.wrap_bio(sin, sout, server_side=True)
    c = cli.wrap_bio(cin, cout, server_hostname="localhost", session=session)
    done = [False, False]
    for _ in range(6):
        for i, obj in enumerate((c, s)):
            if not done[i]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    obj.do_handshake()
                    done[i] = True
            sin.write(cout.read())
            cin.write(sout.read())
    assert all(done)
    with contextlib.suppress(ssl.SSLWantReadError):
        c.read(1)
    return c


def test_a_kept_ticket_resumes_again_and_again_on_both_nodes(pki: Path) -> None:
    node1, node2, cli = contexts(pki)
    first = handshake(node1, cli, None)
    held = fresh_ticket(None, first, 0.0)
    assert not first.session_reused and held is not None
    for node in (node2, node1, node2):
        c = handshake(node, cli, held)
        assert c.session_reused  # the same ticket, offered again
        now = held.time + 10
        assert fresh_ticket(held, c, now) is held  # kept: no copy of the new one


def test_a_full_handshake_or_an_old_ticket_takes_the_new_one(pki: Path) -> None:
    node1, node2, cli = contexts(pki)
    held = handshake(node1, cli, None).session
    assert held is not None
    c = handshake(node2, cli, held)
    newer = fresh_ticket(held, c, held.time + TICKET_KEEP_S + 1)
    assert newer is not None and newer is not held  # an old one is renewed
    full = handshake(node1, cli, None)  # not resumed (e.g. another cluster's ticket)
    assert fresh_ticket(held, full, held.time) is not held
