"""A keepalived 2.2.7 pair in the lab: election, gratuitous ARP, failover on crash/SIGTERM."""

from __future__ import annotations

import time

import pytest

from hagate.lab import Lab
from hagate.lab.keepalived import master_down_interval, pair

pytestmark = [pytest.mark.lab, pytest.mark.keepalived]

NODES = {"n1": "10.1.1.5/24", "n2": "10.1.1.10/24", "client": "10.1.1.50/24"}
VIP = "10.1.1.100"


def _start_pair(lab: Lab, unicast: bool) -> None:
    confs = pair(
        version=2,
        advert_int=1,
        vips=[f"{VIP}/24"],
        unicast=unicast,
        nodes=[("n1", "10.1.1.5", 250), ("n2", "10.1.1.10", 200)],
    )
    for name in ("n1", "n2"):
        lab.start_keepalived(name, confs[name])


@pytest.mark.parametrize("unicast", [True, False], ids=["unicast", "multicast"])
def test_pair_elects_one_master_that_holds_the_vip(unicast: bool) -> None:
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        n1, n2, client = lab.node("n1"), lab.node("n2"), lab.node("client")
        garp = client.watch_garp()
        t0 = time.monotonic()
        _start_pair(lab, unicast)
        lab.wait_until(lambda: n1.has_address(VIP), timeout=8, what="n1 to take the VIP")
        event = garp.wait_for(VIP, after=t0, timeout=2)
        assert event.mac == n1.mac
        assert not n2.has_address(VIP)
        if unicast:  # crash: the backup waits Master_Down_Interval (RFC 3768 §6.4.2)
            t_kill = n1.crash()
            limit = master_down_interval(2, 1.0, 200) + 0.5
            lab.wait_until(lambda: n2.has_address(VIP), timeout=limit, what="n2 to take the VIP")
            assert time.monotonic() - t_kill <= limit
            assert garp.wait_for(VIP, after=t_kill, mac=n2.mac, timeout=1).t - t_kill <= limit
        else:  # SIGTERM: the master sends priority 0 (RFC 3768 §6.4.3), backup takes over fast
            t_kill = n1.terminate()
            took = garp.wait_for(VIP, after=t_kill, mac=n2.mac, timeout=3).t - t_kill
            assert took < 1.5
            assert n2.has_address(VIP)
