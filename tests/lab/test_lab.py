"""The lab itself: builds, isolates, injects faults, and always cleans up after itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from hagate.lab import Lab, LabError
from hagate.lab.registry import record_path

pytestmark = pytest.mark.lab

SO_RCVBUFFORCE = 33  # Linux; the socket module does not name it
NODES = {"a": "10.9.0.1/24", "b": "10.9.0.2/24"}


def _exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def _udp_pair(lab: Lab) -> tuple[socket.socket, socket.socket]:
    """UDP a -> b; returns once one datagram got through (ARP resolved)."""
    tx = lab.node("a").socket()
    rx = lab.node("b").socket()
    rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    rx.bind(("10.9.0.2", 9999))
    rx.settimeout(0.1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tx.sendto(b"warm-up", ("10.9.0.2", 9999))
        try:
            rx.recv(16)
            break
        except TimeoutError:
            continue
    rx.setblocking(False)
    return tx, rx


def _drain(rx: socket.socket) -> int:
    got = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            rx.recv(16)
            got += 1
    return got


def _send_and_count(tx: socket.socket, rx: socket.socket, count: int) -> int:
    """Send ``count`` datagrams a -> b in batches; how many arrived (after 0.2 s of quiet)."""
    _drain(rx)  # leftovers of earlier calls do not count
    got = 0
    for start in range(0, count, 50):
        for _ in range(min(50, count - start)):
            with contextlib.suppress(OSError):  # ENOBUFS when nftables drops on egress
                tx.sendto(b"x", ("10.9.0.2", 9999))
        got += _drain(rx)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.2 and got < count:
        more = _drain(rx)
        if more:
            got += more
            quiet_since = time.monotonic()
        time.sleep(0.005)
    return got


def test_lab_builds_and_tears_down_everything() -> None:
    with Lab.create(prefix="hgt", nodes=NODES, ipv6=True) as lab:
        a, b = lab.node("a"), lab.node("b")
        namespaces = [lab.bridge_netns, a.netns, b.netns]
        assert all(_exists(ns) for ns in namespaces)
        assert a.netns.startswith("hgt-") and a.ifname == "eth0"
        assert a.has_address("10.9.0.1") and not a.has_address("10.9.0.2")
        assert a.address6 is not None and a.has_address(a.address6.ip)
        assert os.path.exists(record_path(lab.name)) and lab.tmpdir.is_dir()
        # the two nodes talk over the bridge
        tx, rx = _udp_pair(lab)
        with tx, rx:
            assert _send_and_count(tx, rx, 5) == 5
        # spawned processes run inside the namespace and know its name
        env = a.run(["sh", "-c", "echo $$"], check=True)
        assert env.returncode == 0
        proc = a.spawn(["sleep", "60"])
        assert proc.pid in a.pids()
        tmpdir = lab.tmpdir
    assert not any(_exists(ns) for ns in namespaces)
    assert proc.poll() is not None
    assert not tmpdir.exists() and not os.path.exists(record_path(lab.name))


def test_teardown_after_an_exception_in_the_block() -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab.create(prefix="hgt", nodes=NODES) as lab:
        lab.node("b").spawn(["sleep", "60"])
        names = [lab.bridge_netns, lab.node("a").netns, lab.node("b").netns]
        raise RuntimeError("boom")
    assert not any(_exists(ns) for ns in names)


def test_spawned_process_passes_the_netns_guard() -> None:
    check = textwrap.dedent(
        """
        import os
        from hagate.lab.guard import assert_in_netns
        assert_in_netns(os.environ["HAGATE_LAB_NETNS"])
        print("inside", os.environ["HAGATE_LAB_NETNS"])
        """
    )
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        a = lab.node("a")
        out = a.spawn([sys.executable, "-c", check], stdout=subprocess.PIPE)
        stdout, _ = out.communicate(timeout=20)
        assert out.returncode == 0 and stdout.decode().split() == ["inside", a.netns]
        with pytest.raises(LabError, match="not inside"):
            from hagate.lab.guard import assert_in_netns

            assert_in_netns(a.netns)  # this test process is in the host namespace


def test_partition_blocks_traffic_while_the_link_stays_up() -> None:
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        a = lab.node("a")
        tx, rx = _udp_pair(lab)
        with tx, rx:
            assert _send_and_count(tx, rx, 20) == 20
            a.partition()
            assert _send_and_count(tx, rx, 20) == 0
            assert "LOWER_UP" in a.link_flags() and "UP" in a.link_flags()
            a.partition()  # idempotent
            a.heal()
            assert _send_and_count(tx, rx, 20) == 20
            a.heal()  # idempotent


def test_loss_drops_about_the_requested_share() -> None:
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        tx, rx = _udp_pair(lab)
        with tx, rx:
            assert _send_and_count(tx, rx, 10) == 10  # ARP resolved before loss starts
            lab.node("a").loss(30, direction="egress")
            got = _send_and_count(tx, rx, 1000)
            assert 600 <= got <= 800, got  # 700 expected, sd ~14.5
            lab.node("a").clear_loss()
            lab.node("b").loss(50, direction="ingress")
            got = _send_and_count(tx, rx, 400)
            assert 140 <= got <= 260, got
            lab.node("b").clear_loss()
            assert _send_and_count(tx, rx, 50) == 50


def test_link_down_is_carrier_loss() -> None:
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        a = lab.node("a")
        assert a.carrier()
        a.link_down()
        assert not a.carrier() and "UP" in a.link_flags()  # admin up, no carrier
        assert a.has_address("10.9.0.1")
        a.link_up()
        lab.wait_until(a.carrier, timeout=2, what="carrier back")


def test_crash_and_terminate_end_every_process() -> None:
    with Lab.create(prefix="hgt", nodes=NODES) as lab:
        a = lab.node("a")
        procs = [a.spawn(["sleep", "60"]) for _ in range(3)]
        t0 = a.crash()
        assert t0 <= time.monotonic() and a.pids() == []
        assert all(p.returncode == -signal.SIGKILL for p in procs)
        term = a.spawn(["sleep", "60"])
        a.terminate()
        assert a.pids() == [] and term.returncode == -signal.SIGTERM
        stubborn = a.spawn(["sh", "-c", "trap '' TERM; sleep 60 & wait"])
        time.sleep(0.1)
        with pytest.raises(LabError, match="ignored SIGTERM"):
            a.terminate(timeout=0.3)
        assert a.pids() == [] and stubborn.poll() is not None


def test_wait_until_returns_elapsed_or_raises() -> None:
    t0 = time.monotonic()
    assert Lab.wait_until(lambda: time.monotonic() - t0 > 0.05, timeout=1) >= 0.05
    with pytest.raises(LabError, match="waiting for never"):
        Lab.wait_until(lambda: False, timeout=0.05, what="never")


def test_stale_labs_of_a_dead_run_are_removed_live_ones_kept() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from hagate.lab import Lab
        lab = Lab.create(prefix="hgtz", nodes={"a": "10.9.0.1/24"})
        lab.node("a").spawn(["sleep", "60"], stdout=-3, stderr=-3)  # DEVNULL: keep our pipe free
        print(lab.node("a").netns, lab.bridge_netns, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    with Lab.create(prefix="hgtz", nodes={"a": "10.9.0.1/24"}) as live:
        # the dead run's own Lab.create cleans stale labs too: it must spare our live one
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert done.returncode == -9, done.stderr
        left = done.stdout.split()
        assert all(_exists(ns) for ns in left) and _exists(live.node("a").netns)
        removed = Lab.cleanup_stale("hgtz")
        assert sorted(removed) == sorted(left)
        assert not any(_exists(ns) for ns in left)
        assert _exists(live.node("a").netns)
    cli = subprocess.run(
        [sys.executable, "-m", "hagate", "lab", "down", "--prefix", "hgtz"],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0 and "nothing to remove" in cli.stdout
