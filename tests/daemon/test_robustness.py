"""Whatever the config model gives, the daemon runs it; a stuck config load, a second daemon
on the same run directory and a forking vrrp_script do no harm (issue 16: 3, 4, 8)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.config import load
from hagate.config import model as cfg
from hagate.daemon import driver
from hagate.daemon.driver import Daemon, Options, StartError, load_config_off_loop
from hagate.daemon.plan import fit_instance, max_addresses, plan_instance
from hagate.daemon.scripts import run_command
from hagate.daemon.status import StatusServer
from hagate.vrrp.actions import SendAdvert
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.packet import encode


def conf(tmp_path: Path, vips: list[str], peers: tuple[str, ...] = (), extra: str = "") -> Path:
    lines = ["vrrp_instance VI_1 {", "  interface eth0", "  virtual_router_id 51",
             "  state MASTER", "  priority 255", "  virtual_ipaddress {",
             *[f"    {v}" for v in vips], "  }"]  # fmt: skip
    if peers:
        lines += ["  unicast_src_ip 10.1.1.5", "  unicast_peer {", *peers, "  }"]
    lines += [extra, "}"]
    path = tmp_path / "keepalived.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_more_vips_than_an_advert_holds_become_excluded(tmp_path: Path) -> None:
    vips = [f"10.2.{i // 250}.{i % 250 + 1}/16" for i in range(300)]
    config, _ = load(conf(tmp_path, vips))
    inst = config.vrrp_instances[0]
    plan = plan_instance(config, inst, [ip("10.1.1.5")])
    assert len(plan.vips) == 255 and len(plan.excluded) == 45
    assert len(plan.all_vips) == 300
    assert len(plan.params.vips) == 255
    machine = VrrpMachine(plan.params)
    machine.start(0.0)
    sent = [a for a in machine.actions() if isinstance(a, SendAdvert)]
    assert sent and encode(sent[0].advert, plan.source, plan.destinations[0])  # no ValueError
    # IPv6: 89 addresses fit in a 1500-octet frame (keepalived's arithmetic).
    assert max_addresses(6, 3, 1500) == 89
    assert max_addresses(4, 2, 1500) == 255
    assert max_addresses(4, 3, 600) == (600 - 14 - 20 - 8) // 4


def test_foreign_family_peers_and_vips_are_dropped(tmp_path: Path) -> None:
    # The model may already drop them (hagate check says so); the daemon does not rely on it.
    config, _ = load(conf(tmp_path, ["10.1.1.100/24"], ("    10.1.1.10",)))
    inst = config.vrrp_instances[0]
    v4_peer = inst.unicast_peers[0]
    odd = dataclasses.replace(
        inst,
        unicast_peers=(v4_peer, cfg.UnicastPeer(ip("fd00::10"))),
        virtual_ipaddresses=(*inst.virtual_ipaddresses, cfg.VirtualIp(ip("fd00::100"), 64)),
    )
    fitted, notes = fit_instance(odd)
    assert [str(p.address) for p in fitted.unicast_peers] == ["10.1.1.10"]
    assert [str(v.address) for v in fitted.virtual_ipaddresses] == ["10.1.1.100"]
    assert any("fd00::10" in n and "dropped" in n for n in notes)
    assert any("fd00::100" in n and "ignoring" in n for n in notes)
    only_v6 = dataclasses.replace(inst, unicast_peers=(cfg.UnicastPeer(ip("fd00::10")),))
    plan = plan_instance(config, only_v6, [ip("10.1.1.5")])
    assert plan.multicast  # no peer left: multicast, as keepalived


def ip(text: str):  # type: ignore[no-untyped-def]
    from ipaddress import ip_address

    return ip_address(text)


@pytest.fixture
def stuck_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """load_config blocks (a FIFO, a device, a pathological file) until released."""
    release = threading.Event()

    def load_config(path: Path) -> cfg.Config:
        release.wait(10)
        raise StartError(f"{path}: released")

    monkeypatch.setattr(driver, "load_config", load_config)
    yield release
    release.set()


def test_config_load_off_the_loop_is_bounded(tmp_path: Path, stuck_loader: threading.Event) -> None:
    main = conf(tmp_path, ["10.1.1.100/24"])

    async def go() -> tuple[str, int, float]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        t0 = time.monotonic()
        try:
            await load_config_off_loop(main, timeout=0.5)
            outcome = "loaded"
        except StartError as exc:
            outcome = str(exc)
        ticker.cancel()
        return outcome, ticks, time.monotonic() - t0

    outcome, ticks, took = asyncio.run(go())
    assert "did not finish in 0.5 s" in outcome
    assert took < 1.0 and ticks >= 20  # the loop kept running meanwhile


def test_reload_keeps_the_running_config_when_the_load_hangs(
    tmp_path: Path, stuck_loader: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(Options(conf(tmp_path, ["10.1.1.100/24"]), tmp_path / "run"))
    daemon.load_timeout = 0.3

    async def go() -> tuple[bool, bool, bool]:
        first = await daemon.reload()  # times out, the thread still blocked
        second = await daemon.reload()  # refused at once: the previous load is still running
        stuck_loader.set()
        await asyncio.sleep(0.1)
        return first, second, daemon._loading.is_set()

    first, second, loading = asyncio.run(go())
    assert first is False and second is False and not loading
    assert daemon.config is None  # nothing applied
    assert "did not finish in 0.3 s" in caplog.text
    assert "has not finished" in caplog.text


def test_second_daemon_on_a_run_dir_is_refused_without_pid_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Daemon(Options(tmp_path / "x.conf", run))
    first._take_run_dir()
    (run / "vrrp.pid").unlink()  # an operator's (or tmpfiles') clean-up
    second = Daemon(Options(tmp_path / "x.conf", run))
    with pytest.raises(StartError, match="another hagate vrrp holds"):
        second._take_run_dir()
    asyncio.run(first._close())
    second._take_run_dir()  # free again once the first is gone
    asyncio.run(second._close())


def test_live_status_socket_is_not_taken_over(tmp_path: Path) -> None:
    from hagate.daemon.status import SocketInUse

    path = tmp_path / "vrrp.sock"

    async def go() -> None:
        one = StatusServer(path, lambda: {"pid": 1})
        await one.start()
        two = StatusServer(path, lambda: {"pid": 2})
        with pytest.raises(SocketInUse):
            await two.start()
        await one.close()
        await two.start()  # a dead socket file is replaced
        await two.close()

    asyncio.run(go())


def test_forked_children_of_a_vrrp_script_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    argv = ("/bin/sh", "-c", f"sleep 600 & echo $! > {pidfile}; exit 0")
    outcome, code = asyncio.run(run_command(argv, 5.0, reap_group=True))
    assert (outcome, code) == ("exited", 0)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.02)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead (its parent, init here, reaps it)
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False
