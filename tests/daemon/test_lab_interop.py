"""Mixed pairs: hagate with Debian's keepalived 2.2.7 in a lab, both ways round."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hagate.lab import Lab, Node
from hagate.vrrp.timers import master_down_interval, skew_time

from .labkit import (
    VIP,
    holders,
    instance,
    start,
    vrrp_conf,
    wait_ready,
    wait_single_holder,
    wait_state,
)

pytestmark = [pytest.mark.lab, pytest.mark.keepalived]

N1, N2 = "10.1.1.5", "10.1.1.10"
MARGIN = 0.15
KA_MARGIN = 0.3  # keepalived's own timer slack when it is the one taking over


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(
        prefix="hgtd", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24", "client": "10.1.1.50/24"}
    ) as lab:
        yield lab


def conf(node: str, version: int, unicast: bool, auth_pass: str = "s3cret") -> str:
    me, peer = (N1, N2) if node == "n1" else (N2, N1)
    return vrrp_conf(
        state="MASTER" if node == "n1" else "BACKUP",
        priority=255 if node == "n1" else 200,
        version=version,
        advert_int=1 if version == 2 else 0.1,
        src=me if unicast else None,
        peers=(peer,) if unicast else (),
        auth_pass=auth_pass if version == 2 else None,
    )


def launch(lab: Lab, node: Node, hagate: bool, text: str) -> None:
    if hagate:
        start(lab, node, text)
        wait_ready(lab, node)
    else:
        lab.start_keepalived(node, text)


@pytest.mark.parametrize(
    ("version", "unicast", "hagate_master", "stop"),
    [
        (2, True, True, "crash"),
        (2, False, False, "crash"),
        (3, False, False, "terminate"),
        (3, True, True, "terminate"),
        (3, True, False, "crash"),
    ],
    ids=[
        "v2-unicast-hagate-master-crash",
        "v2-multicast-keepalived-master-crash",
        "v3-multicast-keepalived-master-sigterm",
        "v3-unicast-hagate-master-sigterm",
        "v3-unicast-keepalived-master-crash",
    ],
)
def test_mixed_pair_elects_fails_over_and_recovers(
    lab: Lab, version: int, unicast: bool, hagate_master: bool, stop: str
) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    interval_cs = 100 if version == 2 else 10
    launch(lab, n2, not hagate_master, conf("n2", version, unicast))
    launch(lab, n1, hagate_master, conf("n1", version, unicast))
    wait_single_holder(lab, [n1, n2], "n1", 6)
    time.sleep(2.2 * interval_cs / 100)
    assert holders(lab, [n1, n2]) == ["n1"]
    hagate = n1 if hagate_master else n2
    inst = instance(lab, hagate)
    assert inst["state"] == ("MASTER" if hagate_master else "BACKUP")
    assert inst["counters"]["discards"] == {}
    if not hagate_master:
        assert inst["master"] == N1 and inst["counters"]["adverts_in"] >= 2

    # Failover: the backup (of the other implementation) takes the VIP in time.
    limit = (
        master_down_interval(version, 200, interval_cs)
        if stop == "crash"
        else skew_time(version, 200, interval_cs)
    ) + (MARGIN if not hagate_master else KA_MARGIN)
    t0 = n1.crash() if stop == "crash" else n1.terminate(wait=False)
    lab.wait_until(lambda: n2.has_address(VIP), limit + 2, what="VIP on n2")
    took = time.monotonic() - t0
    assert took <= limit, f"{stop}: n2 took the VIP after {took:.3f} s (limit {limit:.3f})"
    if stop == "terminate":
        n1.wait_exit(5)
        assert not n1.has_address(VIP)
    if not hagate_master:
        wait_state(lab, n2, "MASTER", 1)

    # Recovery: the priority-255 node comes back and takes the VIP back.
    launch(lab, n1, hagate_master, conf("n1", version, unicast))
    wait_single_holder(lab, [n1, n2], "n1", 6)
    if not hagate_master:
        wait_state(lab, n2, "BACKUP", 2)
        assert instance(lab, n2)["last_transition"]["reason"].startswith(
            "higher priority advert from 10.1.1.5 (255 > 200)"
        )


def test_wrong_auth_pass_gives_two_masters_and_names_the_reason(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    lab.start_keepalived(n1, conf("n1", 2, True, auth_pass="right"))
    start(lab, n2, conf("n2", 2, True, auth_pass="wrong"))
    wait_state(lab, n2, "MASTER", 6)
    assert sorted(holders(lab, [n1, n2])) == ["n1", "n2"]
    discards = instance(lab, n2)["counters"]["discards"]
    assert discards.get("auth_password_mismatch", 0) >= 1, discards


@pytest.mark.parametrize("hagate_master", [True, False], ids=["hagate-master", "keepalived-master"])
def test_ipv6_v3_multicast_pair(hagate_master: bool) -> None:
    with Lab.create(prefix="hgtd", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}, ipv6=True) as lab:
        n1, n2 = lab.node("n1"), lab.node("n2")
        vip6 = "fd00:1::100"
        assert n1.address6 is not None
        vip6 = str(n1.address6.network.network_address + 0x100)

        def text(node: str) -> str:
            return vrrp_conf(
                state="MASTER" if node == "n1" else "BACKUP",
                priority=255 if node == "n1" else 200,
                version=3,
                advert_int=0.1,
                vips=(f"{vip6}/64",),
            )

        watch = n2.watch_garp()
        t0 = time.monotonic()
        launch(lab, n2, not hagate_master, text("n2"))
        launch(lab, n1, hagate_master, text("n1"))
        lab.wait_until(lambda: n1.has_address(vip6), 6, what="IPv6 VIP on n1")
        watch.wait_for(ip=vip6, after=t0, timeout=3)
        time.sleep(0.5)
        assert not n2.has_address(vip6)
        hagate = n1 if hagate_master else n2
        assert instance(lab, hagate)["counters"]["discards"] == {}
        t1 = n1.terminate(wait=False)
        lab.wait_until(lambda: n2.has_address(vip6), 2, what="IPv6 VIP on n2")
        assert time.monotonic() - t1 <= skew_time(3, 200, 10) + KA_MARGIN
