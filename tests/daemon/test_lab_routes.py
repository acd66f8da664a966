"""virtual_routes / virtual_rules in a lab: the master holds them, the backup does not, they
move with a failover, a reload changes them in place, and they read the same in
``ip route show table all`` / ``ip rule`` as what Debian's keepalived 2.2.7 installs for
the same config."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

import hagate.lab.shell as shell
from hagate.lab import Lab, Node

from .labkit import (
    VIP,
    instance,
    log_of,
    poll,
    run_dir,
    start,
    state_of,
    vrrp_conf,
    wait_ready,
    wait_state,
)

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"
ROUTES = """    virtual_routes {
        10.2.0.0/16 via 10.1.1.1 dev eth0 metric 10
        10.3.0.0/16 via 10.1.1.1 dev eth0 table 100
        blackhole 10.9.0.0/16
        unreachable 10.7.0.0/16 table 100
        10.4.0.0/16 dev eth0 src 10.1.1.100 scope link
        blackhole 2001:db8:9::/48
        2001:db8:2::/48 via fe80::1 dev eth0 metric 7 table 100
%s    }
    virtual_rules {
        from 10.1.1.100 table 100 priority 100
        to 10.8.0.0/16 iif eth0 table 100 priority 101
        from 2001:db8:1::/64 table 100 priority 102
    }"""
OURS = ("10.2.0.0", "10.3.0.0", "10.9.0.0", "10.7.0.0", "10.4.0.0", "10.6.0.0", "2001:db8:")
NROUTES, NRULES = 7, 3


def conf(priority: int, vrid: int = 51, extra_route: str = "", state: str = "BACKUP") -> str:
    return vrrp_conf(
        state=state,
        priority=priority,
        version=3,
        advert_int=0.1,
        vrid=vrid,
        instance_extra=ROUTES % extra_route,
    )


def routes(node: Node) -> list[str]:
    """Our routes in every table, IPv4 then IPv6 (``ip route`` shows one family)."""
    out: list[str] = []
    for family in ("-4", "-6"):
        text = shell.ip("-n", node.netns, family, "route", "show", "table", "all").stdout
        out += sorted(line.strip() for line in text.splitlines() if any(p in line for p in OURS))
    return out


def rules(node: Node) -> list[str]:
    out: list[str] = []
    for family in ("-4", "-6"):
        text = shell.ip("-n", node.netns, family, "rule", "show").stdout
        out += sorted(line.strip() for line in text.splitlines() if "lookup 100" in line)
    return out


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtr", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


def test_master_holds_routes_and_rules_they_move_and_reload_in_place(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, conf(200))
    start(lab, n2, conf(100))
    wait_ready(lab, n1)
    wait_ready(lab, n2)
    wait_state(lab, n1, "MASTER")
    wait_state(lab, n2, "BACKUP")
    assert poll(lambda: len(routes(n1)) == NROUTES and len(rules(n1)) == NRULES, 5), (
        routes(n1),
        rules(n1),
    )
    held = routes(n1)
    assert any("10.3.0.0/16 via 10.1.1.1 dev eth0" in r and "table 100" in r for r in held)
    assert any(r.startswith("blackhole 10.9.0.0/16") for r in held)
    assert all("proto keepalived" in r for r in held), held
    assert any(r.startswith("unreachable 10.7.0.0/16 table 100") for r in held)
    assert any("10.4.0.0/16 dev eth0" in r and "src 10.1.1.100" in r for r in held)
    assert rules(n1) == [
        "100:\tfrom 10.1.1.100 lookup 100 proto keepalived",
        "101:\tfrom all to 10.8.0.0/16 iif eth0 lookup 100 proto keepalived",
        "102:\tfrom 2001:db8:1::/64 lookup 100 proto keepalived",
    ]
    assert routes(n2) == [] and rules(n2) == []

    # reload in place: one route added, nothing else touched, no transition
    moves = instance(lab, n1)["counters"]["transitions"]
    before = log_of(lab, n1).count("configuration reloaded")
    (run_dir(lab, n1) / "keepalived.conf").write_text(
        conf(200, extra_route="        10.6.0.0/16 via 10.1.1.1 dev eth0\n")
    )
    os.kill(int((run_dir(lab, n1) / "vrrp.pid").read_text()), signal.SIGHUP)
    assert poll(lambda: log_of(lab, n1).count("configuration reloaded") > before, 5)
    assert poll(lambda: len(routes(n1)) == NROUTES + 1, 5), routes(n1)
    assert state_of(lab, n1) == "MASTER" and set(held) < set(routes(n1))
    # and removed again by the next reload, the others untouched
    (run_dir(lab, n1) / "keepalived.conf").write_text(conf(200))
    os.kill(int((run_dir(lab, n1) / "vrrp.pid").read_text()), signal.SIGHUP)
    assert poll(lambda: log_of(lab, n1).count("configuration reloaded") > before + 1, 5)
    assert poll(lambda: routes(n1) == held, 5), routes(n1)
    assert state_of(lab, n1) == "MASTER" and len(rules(n1)) == NRULES
    assert instance(lab, n1)["counters"]["transitions"] == moves

    # failover (SIGTERM): n1 removes them, n2 installs the same ones
    n1.terminate()
    wait_state(lab, n2, "MASTER")
    assert poll(lambda: len(routes(n2)) == NROUTES and len(rules(n2)) == NRULES, 5), routes(n2)
    assert routes(n1) == [] and rules(n1) == []
    assert routes(n2) == held


@pytest.mark.keepalived
def test_routes_and_rules_read_as_keepalived_installs_them(lab: Lab) -> None:
    """keepalived alone on n1 (VRID 51), hagate alone on n2 (VRID 52), the same routes:
    each is master of its own router and installs the same table entries."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    lab.start_keepalived(n1, conf(200, vrid=51, state="MASTER"))
    start(lab, n2, conf(200, vrid=52, state="MASTER"))
    wait_ready(lab, n2)
    wait_state(lab, n2, "MASTER")

    def settled(node: Node) -> bool:
        return node.has_address(VIP) and len(routes(node)) == NROUTES and len(rules(node)) == NRULES

    assert poll(lambda: settled(n1), 10), (routes(n1), rules(n1))
    assert poll(lambda: settled(n2), 5), (routes(n2), rules(n2))
    time.sleep(0.2)
    assert routes(n2) == routes(n1)
    assert rules(n2) == rules(n1)
    n1.terminate()
    n2.terminate()
    assert routes(n1) == routes(n2) == [] and rules(n1) == rules(n2) == []


def test_routes_left_by_a_killed_master_go_when_it_restarts_as_backup(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, conf(100))
    wait_ready(lab, n1)
    wait_state(lab, n1, "MASTER")
    assert poll(lambda: len(routes(n1)) == NROUTES and len(rules(n1)) == NRULES, 5), routes(n1)
    n1.crash()  # SIGKILL: routes and rules stay behind, as keepalived's do
    assert len(routes(n1)) == NROUTES and len(rules(n1)) == NRULES
    start(lab, n2, conf(200))
    wait_ready(lab, n2)
    wait_state(lab, n2, "MASTER")
    start(lab, n1, conf(100))
    wait_ready(lab, n1)
    wait_state(lab, n1, "BACKUP")
    assert routes(n1) == [] and rules(n1) == []
    assert "left behind by a previous run" in log_of(lab, n1)
    assert len(routes(n2)) == NROUTES and len(rules(n2)) == NRULES
