"""Parity with Debian's keepalived 2.2.7 for issue 12's features, side by side in a lab.

* A vrrp_sync_group of two instances fails over together, whichever side runs hagate: the
  master's tracked interface goes down on one member, both VIPs move to the other node
  (keepalived vrrp_sync_fault: both members send priority 0), and both come back.
* notify FIFO lines are byte-equal to keepalived's for the same transitions: start-up,
  the group's two-step way to MASTER (vrrp_sync_can_goto_master), a member's FAULT
  dragging the other, recovery, SIGTERM; priority changes; a master hearing a
  lower-priority advert (MASTER_RX_LOWER_PRI, and notify_master_rx_lower_pri run with the
  same arguments).

Fast timers: VRRPv3, advert_int 0.1 s.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

import hagate.lab.shell as shell
from hagate.lab import Lab, Node
from hagate.vrrp.advert import Advert
from hagate.vrrp.packet import encode

from .labkit import holders, start, wait_ready

pytestmark = [pytest.mark.lab, pytest.mark.keepalived]

N1, N2 = "10.1.1.5", "10.1.1.10"
VIP1, VIP2 = "10.1.1.100", "10.1.1.101"


def group_conf(p1: int, p2: int, *, track: bool = False, top: str = "") -> str:
    """Two instances on eth0 in one vrrp_sync_group; VI_1 tracks trk0 when ``track``."""
    tracked = "    track_interface {\n        trk0\n    }\n" if track else ""
    body = [top, "vrrp_sync_group G1 {", "    group {", "        VI_1", "        VI_2", "    }"]
    body.append("}")
    for name, vrid, prio, vip, extra in (
        ("VI_1", 51, p1, VIP1, tracked),
        ("VI_2", 52, p2, VIP2, ""),
    ):
        body += [
            f"vrrp_instance {name} {{",
            "    state BACKUP",
            "    interface eth0",
            f"    virtual_router_id {vrid}",
            f"    priority {prio}",
            "    advert_int 0.1",
            "    version 3",
            "    virtual_ipaddress {",
            f"        {vip}/24",
            "    }",
            extra.rstrip("\n"),
            "}",
        ]
    return "\n".join(line for line in body if line) + "\n"


def add_dummy(node: Node) -> None:
    """A veth pair inside the node (no dummy module in every kernel): ``trk0`` is tracked."""
    ns = node.netns
    shell.ip("-n", ns, "link", "add", "trk0", "type", "veth", "peer", "name", "trk1")
    shell.ip("-n", ns, "link", "set", "trk1", "up")
    shell.ip("-n", ns, "link", "set", "trk0", "up")


def set_dummy(node: Node, up: bool) -> None:
    shell.ip("-n", node.netns, "link", "set", "trk0", "up" if up else "down")


def launch(lab: Lab, node: Node, hagate: bool, text: str) -> None:
    if hagate:
        start(lab, node, text)
        wait_ready(lab, node)
    else:
        lab.start_keepalived(node, text)


def both(lab: Lab, nodes: list[Node], who: str) -> bool:
    return holders(lab, nodes, VIP1) == [who] and holders(lab, nodes, VIP2) == [who]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtp", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24"}) as lab:
        yield lab


@pytest.mark.parametrize("hagate_master", [True, False], ids=["hagate-master", "keepalived-master"])
def test_sync_group_fails_over_together_in_a_mixed_pair(lab: Lab, hagate_master: bool) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    add_dummy(n1)
    launch(lab, n1, hagate_master, group_conf(200, 190, track=True))
    launch(lab, n2, not hagate_master, group_conf(100, 90))
    lab.wait_until(lambda: both(lab, [n1, n2], "n1"), 8, what="both VIPs on n1")

    # VI_1's tracked interface fails on n1: VI_2 (its own checks fine) must follow it.
    t0 = time.monotonic()
    set_dummy(n1, up=False)
    lab.wait_until(lambda: both(lab, [n1, n2], "n2"), 3, what="both VIPs on n2")
    took = time.monotonic() - t0
    # priority 0 from both members: n2 takes over after Skew_Time (< 0.07 s) + slack
    print(f"sync group moved to n2 in {took:.3f} s (hagate master: {hagate_master})")
    assert took < 1.0, f"the group moved to n2 after {took:.3f} s"
    time.sleep(0.5)
    assert both(lab, [n1, n2], "n2")  # stable: n1 (FAULT) holds neither

    # Back up: n1 (higher priorities, preempting) takes both back together.
    set_dummy(n1, up=True)
    lab.wait_until(lambda: both(lab, [n1, n2], "n1"), 3, what="both VIPs back on n1")


def read_fifo(fd: int) -> bytes:
    out = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            out += chunk
    return out


def fifo_run(lab: Lab, node: Node, hagate: bool) -> bytes:
    """One node alone: start, both MASTER, trk0 down (FAULT), up again, MASTER, SIGTERM;
    everything the FIFO received."""
    fifo = lab.node_dir(node) / f"notify-{'hagate' if hagate else 'keepalived'}.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        top = f"global_defs {{\n    vrrp_notify_fifo {fifo}\n}}"
        text = group_conf(200, 50, track=True, top=top)
        launch(lab, node, hagate, text)
        lines: list[bytes] = []

        def until(count: int, what: str) -> None:
            def got() -> bool:
                lines.extend(read_fifo(fd).splitlines(keepends=True))
                return len(lines) >= count

            lab.wait_until(got, 5, what=f"{what} ({b''.join(lines)!r})")

        until(6, "start-up and MASTER")
        set_dummy(node, up=False)
        until(9, "FAULT")
        time.sleep(0.2)  # keepalived debounces nothing here; let both settle
        set_dummy(node, up=True)
        until(15, "BACKUP then MASTER again")
        node.terminate()
        until(18, "STOP")
        time.sleep(0.2)
        lines.extend(read_fifo(fd).splitlines(keepends=True))
        return b"".join(lines)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            fifo.unlink()


def test_notify_fifo_lines_are_byte_equal_to_keepalived(lab: Lab) -> None:
    node = lab.node("n1")
    add_dummy(node)
    theirs = fifo_run(lab, node, hagate=False)
    ours = fifo_run(lab, node, hagate=True)
    expected = (
        b'GROUP "G1" BACKUP 0\n'
        b'INSTANCE "VI_1" BACKUP 200\n'
        b'INSTANCE "VI_2" BACKUP 50\n'
        # VI_1 (shorter skew) times out first and waits for VI_2, which then pulls it.
        b'INSTANCE "VI_2" MASTER 50\n'
        b'INSTANCE "VI_1" MASTER 200\n'
        b'GROUP "G1" MASTER 0\n'
        b'INSTANCE "VI_1" FAULT 200\n'
        b'INSTANCE "VI_2" FAULT 50\n'
        b'GROUP "G1" FAULT 0\n'
        b'INSTANCE "VI_1" BACKUP 200\n'
        b'INSTANCE "VI_2" BACKUP 50\n'
        b'GROUP "G1" BACKUP 0\n'
        b'INSTANCE "VI_2" MASTER 50\n'
        b'INSTANCE "VI_1" MASTER 200\n'
        b'GROUP "G1" MASTER 0\n'
        b'INSTANCE "VI_1" STOP 200\n'
        b'INSTANCE "VI_2" STOP 50\n'
        b'GROUP "G1" STOP 0\n'
    )
    assert theirs == expected, f"keepalived wrote:\n{theirs.decode()}"
    assert ours == theirs


def priority_run(lab: Lab, node: Node, hagate: bool) -> bytes:
    """One instance with notify_priority_changes and a weighted tracked interface: start,
    MASTER, trk0 down (priority 200 -> 180), up again, SIGTERM."""
    fifo = lab.node_dir(node) / f"prio-{'hagate' if hagate else 'keepalived'}.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    lines: list[bytes] = []

    def until(count: int, what: str) -> None:
        def got() -> bool:
            lines.extend(read_fifo(fd).splitlines(keepends=True))
            return len(lines) >= count

        lab.wait_until(got, 5, what=f"{what} ({b''.join(lines)!r})")

    text = "\n".join(
        [
            "global_defs {",
            f"    vrrp_notify_fifo {fifo}",
            "}",
            "vrrp_instance VI_1 {",
            "    state BACKUP",
            "    interface eth0",
            "    virtual_router_id 51",
            "    priority 200",
            "    advert_int 0.1",
            "    version 3",
            "    notify_priority_changes",
            "    track_interface {",
            "        trk0 weight -20",
            "    }",
            "    virtual_ipaddress {",
            f"        {VIP1}/24",
            "    }",
            "}",
            "",
        ]
    )
    try:
        launch(lab, node, hagate, text)
        until(2, "BACKUP, MASTER")
        set_dummy(node, up=False)
        until(3, "priority down")
        set_dummy(node, up=True)
        until(4, "priority up")
        node.terminate()
        until(5, "STOP")
        time.sleep(0.2)
        lines.extend(read_fifo(fd).splitlines(keepends=True))
        return b"".join(lines)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            fifo.unlink()


def test_notify_fifo_priority_changes_are_byte_equal_to_keepalived(lab: Lab) -> None:
    node = lab.node("n1")
    add_dummy(node)
    theirs = priority_run(lab, node, hagate=False)
    ours = priority_run(lab, node, hagate=True)
    assert theirs == (
        b'INSTANCE "VI_1" BACKUP 200\n'
        b'INSTANCE "VI_1" MASTER 200\n'
        b'INSTANCE "VI_1" MASTER_PRIORITY 180\n'
        b'INSTANCE "VI_1" MASTER_PRIORITY 200\n'
        b'INSTANCE "VI_1" STOP 200\n'
    ), f"keepalived wrote:\n{theirs.decode()}"
    assert ours == theirs


def send_lower_advert(node: Node, src: str, priority: int = 100) -> None:
    """One VRRPv3 advert for VRID 51 / VIP1 from ``src`` at ``priority`` (TTL 255, to
    224.0.0.18): what a split brain's other master sends when the link heals."""
    advert = Advert(3, 51, priority, 10, (IPv4Address(VIP1),))
    data = encode(advert, IPv4Address(src), IPv4Address("224.0.0.18"))
    sock = node.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.bind((src, 0))
        sock.sendto(data, ("224.0.0.18", 0))
    finally:
        sock.close()


def lower_prio_run(lab: Lab, node: Node, peer: Node, hagate: bool) -> tuple[bytes, str]:
    """A master (200) hears one lower-priority advert: its FIFO lines and what its
    notify_master_rx_lower_pri script was given."""
    tag = "hagate" if hagate else "keepalived"
    fifo = lab.node_dir(node) / f"rx-{tag}.fifo"
    out = lab.node_dir(node) / f"rx-{tag}.out"
    script = lab.node_dir(node) / f"rx-{tag}.sh"
    script.write_text(f'#!/bin/sh\necho "rx $*" >> {out}\n')
    script.chmod(0o755)
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    lines: list[bytes] = []

    def until(count: int, what: str) -> None:
        def got() -> bool:
            lines.extend(read_fifo(fd).splitlines(keepends=True))
            return len(lines) >= count

        lab.wait_until(got, 5, what=f"{what} ({b''.join(lines)!r})")

    text = "\n".join(
        [
            "global_defs {",
            f"    vrrp_notify_fifo {fifo}",
            "    script_user root",
            "}",
            "vrrp_instance VI_1 {",
            "    state BACKUP",
            "    interface eth0",
            "    virtual_router_id 51",
            "    priority 200",
            "    advert_int 0.1",
            "    version 3",
            f"    notify_master_rx_lower_pri {script}",
            "    virtual_ipaddress {",
            f"        {VIP1}/24",
            "    }",
            "}",
            "",
        ]
    )
    try:
        launch(lab, node, hagate, text)
        until(2, "BACKUP, MASTER")
        send_lower_advert(peer, N2)
        until(3, "MASTER_RX_LOWER_PRI")
        lab.wait_until(out.exists, 5, what="notify_master_rx_lower_pri ran")
        node.terminate()
        until(4, "STOP")
        time.sleep(0.2)
        lines.extend(read_fifo(fd).splitlines(keepends=True))
        return b"".join(lines), out.read_text()
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            fifo.unlink()


def test_notify_master_rx_lower_pri_is_keepaliveds(lab: Lab) -> None:
    node, peer = lab.node("n1"), lab.node("n2")
    theirs = lower_prio_run(lab, node, peer, hagate=False)
    ours = lower_prio_run(lab, node, peer, hagate=True)
    assert theirs[0] == (
        b'INSTANCE "VI_1" BACKUP 200\n'
        b'INSTANCE "VI_1" MASTER 200\n'
        b'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 200\n'
        b'INSTANCE "VI_1" STOP 200\n'
    ), f"keepalived wrote:\n{theirs[0].decode()}"
    assert ours == theirs
