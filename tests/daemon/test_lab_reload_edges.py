"""The edges of reload and addressing that keepalived users meet:

* an instance added at reload starts at once: vrrp_startup_delay counts from the daemon's
  start only (a running node has booted already);
* an instance removed at reload notifies DELETED (with notify_deleted) on the FIFO it was
  configured with; a FIFO whose path changed is re-opened on the new path;
* a non-default multicast group (vrrp_mcast_group4/6, mcast_dst_ip) is joined, so two
  daemons on it hear each other (without the join each would become master);
* unicast_ttl is the TTL unicast adverts leave with (read off the wire).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.utils import rdpcap

from hagate.lab import Lab

from .labkit import instance, log_of, poll, run_dir, start, vrrp_conf, wait_ready, wait_state

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"
V6VIP = "fd00:6867:7465::100/64"


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


@pytest.fixture
def fifos(tmp_path: Path) -> Iterator[tuple[Path, Path, int, int]]:
    """Two FIFOs made by the test (so the daemon never unlinks them), read ends open."""
    a, b = tmp_path / "a.fifo", tmp_path / "b.fifo"
    os.mkfifo(a)
    os.mkfifo(b)
    fa = os.open(a, os.O_RDONLY | os.O_NONBLOCK)
    fb = os.open(b, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield a, b, fa, fb
    finally:
        os.close(fa)
        os.close(fb)


def _one_node_conf(fifo: Path, names: tuple[str, ...]) -> str:
    top = f"global_defs {{\n    vrrp_startup_delay 4\n    notify_fifo {fifo}\n}}\n"
    vrid = {"VI_1": 51, "VI_2": 52, "VI_3": 53}
    parts = [top]
    for name in names:
        n = vrid[name]
        parts.append(
            vrrp_conf(
                version=3,
                advert_int=0.1,
                vrid=n,
                name=name,
                vips=(f"10.1.1.{n + 50}/24",),
                instance_extra="    notify_deleted",
            )
        )
    return "".join(parts)


def _reload(lab: Lab, node_name: str, text: str) -> None:
    node = lab.node(node_name)
    before = log_of(lab, node).count("configuration reloaded")
    (run_dir(lab, node) / "keepalived.conf").write_text(text)
    pid = int((run_dir(lab, node) / "vrrp.pid").read_text())
    os.kill(pid, 1)  # SIGHUP
    assert poll(lambda: log_of(lab, node).count("configuration reloaded") > before, 5), log_of(
        lab, node
    )[-2000:]


def test_reload_adds_without_startup_delay_deletes_and_moves_the_fifo(
    fifos: tuple[Path, Path, int, int],
) -> None:
    a, b, fa, fb = fifos
    with Lab.create(prefix="hgte", nodes={"n1": f"{N1}/24"}) as lab:
        n1 = lab.node("n1")
        start(lab, n1, _one_node_conf(a, ("VI_1", "VI_2")))
        wait_ready(lab, n1)
        wait_state(lab, n1, "BACKUP", 3)
        _reload(lab, "n1", _one_node_conf(b, ("VI_1", "VI_3")))
        # VI_3 alone on the link: master after ~3 adverts of 0.1 s, not after the 4 s delay
        t0 = time.monotonic()
        assert poll(lambda: instance(lab, n1, "VI_3")["state"] == "MASTER", 2.5), log_of(lab, n1)
        took = time.monotonic() - t0
        assert instance(lab, n1, "VI_1")["state"] == "BACKUP"  # still within its start delay
        old = _read(fa)
        assert b'INSTANCE "VI_2" DELETED 100\n' in old, old
        assert b"VI_3" not in old
        got = bytearray()

        def master_line() -> bool:
            got.extend(_read(fb))
            return b'INSTANCE "VI_3" MASTER 100\n' in got

        assert poll(master_line, 1), bytes(got)
        assert b'INSTANCE "VI_3" BACKUP 100\n' in got and b"VI_2" not in got
    assert took < 2.0


def test_two_daemons_on_a_non_default_multicast_group() -> None:
    """VI_1 on vrrp_mcast_group4 224.0.0.99, VI_2 on mcast_dst_ip 224.0.0.77, VI_6 (IPv6)
    on vrrp_mcast_group6 ff02::99: each backup hears its master (a socket that joined only
    224.0.0.18 / ff02::12 hears none of them, and both nodes would be master)."""
    top = "global_defs {\n    vrrp_mcast_group4 224.0.0.99\n    vrrp_mcast_group6 ff02::99\n}\n"
    with Lab.create(prefix="hgte", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}, ipv6=True) as lab:
        for node, prio in (("n1", 200), ("n2", 100)):
            common = {"version": 3, "advert_int": 0.1, "priority": prio}
            text = top + vrrp_conf(**common, name="VI_1")  # type: ignore[arg-type]
            text += vrrp_conf(
                **common,
                name="VI_2",
                vrid=52,
                vips=("10.1.1.102/24",),  # type: ignore[arg-type]
                instance_extra="    mcast_dst_ip 224.0.0.77",
            )
            text += vrrp_conf(**common, name="VI_6", vrid=53, vips=(V6VIP,))  # type: ignore[arg-type]
            start(lab, lab.node(node), text)
        n1, n2 = lab.node("n1"), lab.node("n2")
        wait_ready(lab, n1)
        wait_ready(lab, n2)
        for name in ("VI_1", "VI_2", "VI_6"):
            lab.wait_until(
                lambda n=name: instance(lab, n1, n)["state"] == "MASTER",
                5,
                what=f"n1 {name} master",
            )
        time.sleep(0.5)  # well past a 0.1 s backup's down interval
        for name in ("VI_1", "VI_2", "VI_6"):
            seen = instance(lab, n2, name)
            assert seen["state"] == "BACKUP", (name, log_of(lab, n2)[-3000:])
            assert seen["counters"]["adverts_in"] > 3, name
            if name != "VI_6":
                assert seen["master"] == N1
            assert instance(lab, n1, name)["counters"]["transitions"] <= 2


def test_unicast_ttl_on_the_wire() -> None:
    """unicast_ttl 64: n1's unicast adverts reach n2 with TTL 64 (keepalived's TTL check
    is off in unicast mode, so n2 accepts them and stays backup)."""
    with Lab.create(prefix="hgte", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        n1, n2 = lab.node("n1"), lab.node("n2")
        for node, me, peer, prio in ((n1, N1, N2, 200), (n2, N2, N1, 100)):
            start(
                lab,
                node,
                vrrp_conf(
                    version=3,
                    advert_int=0.1,
                    priority=prio,
                    src=me,
                    peers=(peer,),
                    instance_extra="    unicast_ttl 64",
                ),
            )
        wait_ready(lab, n1)
        wait_ready(lab, n2)
        wait_state(lab, n1, "MASTER", 5)
        wait_state(lab, n2, "BACKUP", 5)
        pcap = lab.node_dir(n2) / "ttl.pcap"
        cap = n2.spawn(
            [
                "tcpdump",
                "-U",
                "-n",
                "-i",
                "eth0",
                "-w",
                str(pcap),
                "-c",
                "3",
                f"ip proto 112 and src {N1}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            cap.wait(10)
        finally:
            if cap.poll() is None:
                cap.kill()
                cap.wait()
        ttls = {pkt[IP].ttl for pkt in rdpcap(str(pcap)) if IP in pkt}
        assert ttls == {64}
        assert instance(lab, n2)["state"] == "BACKUP"
        assert instance(lab, n2)["master"] == N1
