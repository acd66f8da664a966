"""Notify scripts: keepalived's argument contract and non-blocking launch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hagate.daemon.cmdline import parse_script_value
from hagate.daemon.notify import Notifier, NotifySpec, notify_calls


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
