"""Notify scripts: keepalived's argument contract and non-blocking launch."""

from __future__ import annotations

import asyncio
import os
import time
from ipaddress import IPv4Address
from pathlib import Path

from hagate.config import load
from hagate.daemon.cmdline import parse_script_value
from hagate.daemon.fifo import FifoSpec, FifoWriter, fifo_line
from hagate.daemon.notify import Notifier, NotifySpec, fifo_event, notify_calls
from hagate.daemon.plan import InstancePlan, fifo_specs, plan_instance
from hagate.vrrp.actions import GroupStateChanged, MasterRxLowerPri, PriorityChanged, RunNotify
from hagate.vrrp.machine import VrrpMachine
from hagate.vrrp.state import State
from hagate.vrrp.syncgroup import SyncGroup


def test_specific_then_generic_with_four_arguments() -> None:
    spec = NotifySpec(
        master=parse_script_value('"/etc/keepalived/master.sh now"'),
        generic=parse_script_value("/etc/keepalived/notify.sh"),
    )
    calls = notify_calls(spec, "VI_1", "MASTER", 255)
    assert [c.argv for c in calls] == [
        ("/etc/keepalived/master.sh", "now"),
        ("/etc/keepalived/notify.sh", "INSTANCE", "VI_1", "MASTER", "255"),
    ]


def test_only_generic_for_states_without_a_script() -> None:
    spec = NotifySpec(generic=parse_script_value("/n.sh"))
    for state in ("BACKUP", "FAULT", "STOP"):
        (call,) = notify_calls(spec, "VI_2", state, 100)
        assert call.argv == ("/n.sh", "INSTANCE", "VI_2", state, "100")


def test_nothing_configured() -> None:
    assert notify_calls(NotifySpec(), "VI_1", "MASTER", 100) == []


def test_scripts_run_in_background(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "n.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    spec = NotifySpec(backup=parse_script_value(str(slow)), generic=parse_script_value(str(script)))

    async def go() -> float:
        n = Notifier()
        start = time.monotonic()
        n.notify(spec, "VI_1", "BACKUP", 200)
        took = time.monotonic() - start
        stop_spec = NotifySpec(stop=parse_script_value(str(slow)))
        n.notify(stop_spec, "VI_1", "STOP", 200)
        await n.drain(timeout=1.5)  # the slow backup script is still running; STOP was killed
        return took

    assert asyncio.run(go()) < 0.1
    assert out.read_text() == "INSTANCE VI_1 BACKUP 200\n"


def test_missing_notify_script_is_counted_not_raised() -> None:
    async def go() -> int:
        n = Notifier()
        n.notify(NotifySpec(master=parse_script_value("/nonexistent")), "VI_1", "MASTER", 1)
        await n.drain()
        return n.failed

    assert asyncio.run(go()) == 1


# ---- notify_fifo ----------------------------------------------------------------------


def _plan(tmp_path: Path, text: str) -> list[InstancePlan]:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    config, _ = load(path)
    return [
        plan_instance(config, inst, [IPv4Address(f"10.0.{i}.1")])
        for i, inst in enumerate(config.vrrp_instances, start=1)
    ]


FIFO_CONF = """
global_defs {{
    vrrp_notify_fifo {fifo}
}}
vrrp_sync_group G1 {{
    group {{
        VI_1
        VI_2
    }}
}}
vrrp_instance VI_1 {{
    interface lo
    virtual_router_id 1
    priority 100
    notify_priority_changes
    virtual_ipaddress {{
        10.0.1.100
    }}
}}
vrrp_instance VI_2 {{
    interface lo
    virtual_router_id 2
    priority 90
    virtual_ipaddress {{
        10.0.2.100
    }}
}}
"""


def test_fifo_lines_are_keepaliveds_in_event_order(tmp_path: Path) -> None:
    """The sync group's notifications, queued on two machines, reach the FIFO in the order
    they happened, in keepalived's exact format (a group's priority is 0)."""
    fifo = tmp_path / "notify.fifo"
    plans = _plan(tmp_path, FIFO_CONF.format(fifo=fifo))
    assert fifo_specs(load(tmp_path / "keepalived.conf")[0]) == [FifoSpec(str(fifo))]
    group = SyncGroup("G1")
    machines = [VrrpMachine(p.params) for p in plans]
    for m in machines:
        group.join(m)

    async def go() -> bytes:
        n = Notifier()
        n.open_fifos([FifoSpec(str(fifo))])
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:

            def drain() -> None:  # as InstanceRuntime.drain: each machine, then its peers
                for plan, m in zip(plans, machines, strict=True):
                    for action in m.actions():
                        if isinstance(action, RunNotify | GroupStateChanged | PriorityChanged):
                            n.on_action(action, plan, m)

            for m in machines:
                m.start(0.0)
            drain()
            a, b = machines
            b.handle_timer(b.get_timer() or 0.0)  # B first, so the group waits for A...
            a.handle_timer(a.get_timer() or 0.0)  # ...which becomes MASTER and pulls B
            drain()
            a.shutdown(9.0)
            b.shutdown(9.0)
            drain()
            await asyncio.sleep(0)  # one loop turn: the notifier flushes in seq order
            return os.read(reader, 4096)
        finally:
            os.close(reader)
            n.close()

    assert asyncio.run(go()) == (
        b'GROUP "G1" BACKUP 0\n'
        b'INSTANCE "VI_1" BACKUP 100\n'
        b'INSTANCE "VI_2" BACKUP 90\n'
        b'INSTANCE "VI_1" MASTER 100\n'
        b'INSTANCE "VI_2" MASTER 90\n'
        b'GROUP "G1" MASTER 0\n'
        b'INSTANCE "VI_1" STOP 100\n'
        b'INSTANCE "VI_2" STOP 90\n'
        b'GROUP "G1" STOP 0\n'
    )
    assert not fifo.exists()  # we created it: unlinked at close, as keepalived


def test_fifo_event_lines() -> None:
    p = PriorityChanged(100, 90, "x")
    assert fifo_event(p, "VI_1", State.BACKUP, 90) == b'INSTANCE "VI_1" BACKUP_PRIORITY 90\n'
    assert fifo_event(p, "VI_1", State.MASTER, 90) == b'INSTANCE "VI_1" MASTER_PRIORITY 90\n'
    lower = MasterRxLowerPri(IPv4Address("10.0.0.2"), 50)
    assert fifo_event(lower, "VI_1", State.MASTER, 200) == (
        b'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 200\n'
    )
    assert fifo_line("INSTANCE", "VI 1", "FAULT", 0) == b'INSTANCE "VI 1" FAULT 0\n'


def test_fifo_existing_is_kept_and_a_full_pipe_loses_lines_not_the_daemon(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    w = FifoWriter(FifoSpec(str(fifo)))
    assert w.open(None, None) and not w.created
    line = b"x" * 4096
    for _ in range(40):  # 160 KiB into a 64 KiB pipe nobody reads
        w.write(line)
    assert w.lost > 0 and w.lines + w.lost == 40
    w.close()
    assert fifo.exists()  # not ours: left in place


def test_fifo_script_gets_the_path_as_last_argument(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "reader.sh"
    script.write_text(f'#!/bin/sh\necho "$@" > {out}\nread line < "$2"\necho "$line" >> {out}\n')
    script.chmod(0o755)
    fifo = tmp_path / "f"

    async def go() -> None:
        n = Notifier()
        cmd = parse_script_value(f"'{script} one'")
        n.open_fifos([FifoSpec(str(fifo), script=cmd)])
        n.notify(NotifySpec(), "VI_1", "MASTER", 200)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if out.exists() and len(out.read_text().splitlines()) == 2:
                break
        n.close()

    asyncio.run(go())
    assert out.read_text() == f'one {fifo}\nINSTANCE "VI_1" MASTER 200\n'


def test_group_notify_scripts_get_group_arguments(tmp_path: Path) -> None:
    spec = NotifySpec(generic=parse_script_value("/n.sh"))
    (call,) = notify_calls(spec, "G1", "FAULT", 0, "GROUP")
    assert call.argv == ("/n.sh", "GROUP", "G1", "FAULT", "0")


def test_an_instance_removed_at_reload_is_deleted_or_fault(tmp_path: Path) -> None:
    """keepalived send_instance_notifies: DELETED with notify_deleted, else FAULT (the
    old way, kept by default)."""
    text = FIFO_CONF.format(fifo=tmp_path / "f").replace(
        "    notify_priority_changes\n", "    notify_deleted\n"
    )
    plans = _plan(tmp_path, text)
    seen: list[bytes] = []

    class Capture(FifoWriter):
        def write(self, line: bytes) -> None:
            seen.append(line)

    n = Notifier()
    n._fifos.append(Capture(FifoSpec("unused")))
    for plan in plans:
        m = VrrpMachine(plan.params)
        m.start(0.0)
        m.actions()
        m.shutdown(1.0, deleted=True)
        for action in m.actions():
            if isinstance(action, RunNotify):
                n.on_action(action, plan, m)
    n.flush()
    assert seen == [b'INSTANCE "VI_1" DELETED 100\n', b'INSTANCE "VI_2" FAULT 90\n']


def test_reload_keeps_an_unchanged_fifo_and_moves_a_changed_one(tmp_path: Path) -> None:
    """reopen_fifos: the same spec keeps its open writer (its reader script is not
    restarted); a new path is opened, the old one closed (and unlinked: we made it)."""
    a, b, c = (str(tmp_path / f"{n}.fifo") for n in "abc")

    async def go() -> None:
        n = Notifier()
        n.open_fifos([FifoSpec(a), FifoSpec(b)])
        kept = n._fifos[0]
        n.reopen_fifos([FifoSpec(a), FifoSpec(b), FifoSpec(a)])  # the same, a named twice
        assert n._fifos[0] is kept and len(n._fifos) == 2
        n.reopen_fifos([FifoSpec(a), FifoSpec(c)])
        assert n._fifos[0] is kept and [w.spec.path for w in n._fifos] == [a, c]
        assert not os.path.exists(b) and os.path.exists(c)
        reader = os.open(c, os.O_RDONLY | os.O_NONBLOCK)
        try:
            n.notify(NotifySpec(), "VI_1", "MASTER", 100)
            assert os.read(reader, 100) == b'INSTANCE "VI_1" MASTER 100\n'
        finally:
            os.close(reader)
            n.close()

    asyncio.run(go())


def test_config_notify_scripts_reach_the_plan_and_run_as_keepalived(tmp_path: Path) -> None:
    """notify_stop, notify_master_rx_lower_pri and notify_deleted SCRIPT from a
    keepalived.conf: the plan carries each; the lower-priority one runs with its own words
    only (keepalived set_vrrp_notify_script(strvec, 0)) and writes MASTER_RX_LOWER_PRI to
    the FIFO; STOP runs notify_stop then notify with four arguments."""
    out = tmp_path / "out"
    script = tmp_path / "n.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {out}\n')
    script.chmod(0o755)
    fifo = tmp_path / "f"
    text = FIFO_CONF.format(fifo=fifo).replace(
        "    notify_priority_changes\n",
        f"    notify_stop '{script} stop'\n"
        f"    notify_master_rx_lower_pri '{script} rx'\n"
        f"    notify_deleted '{script} deleted'\n"
        f"    notify {script}\n",
    )
    plan = _plan(tmp_path, text)[0]
    spec = plan.notify
    assert spec.stop is not None and spec.stop.argv == (str(script), "stop")
    assert spec.master_rx_lower_pri is not None
    assert spec.master_rx_lower_pri.argv == (str(script), "rx")
    assert spec.deleted is not None and spec.deleted.argv == (str(script), "deleted")
    assert spec.notify_deleted  # a notify_deleted script implies DELETED notifications

    async def go() -> bytes:
        n = Notifier()
        n.open_fifos([FifoSpec(str(fifo))])
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            m = VrrpMachine(plan.params)
            m.start(0.0)
            m.actions()
            lower = MasterRxLowerPri(IPv4Address("10.0.1.7"), 50)
            n.on_action(lower, plan, m)
            n.flush()
            await n.drain()
            n.notify(spec, plan.name, "STOP", 100)
            await n.drain()
            return os.read(reader, 4096)
        finally:
            os.close(reader)
            n.close()

    lines = asyncio.run(go())
    assert lines == b'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\nINSTANCE "VI_1" STOP 100\n'
    rx, *stop = out.read_text().splitlines()
    assert rx == "rx" and sorted(stop) == ["INSTANCE VI_1 STOP 100", "stop"]  # run together
