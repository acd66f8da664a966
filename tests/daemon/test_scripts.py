"""vrrp_script runner: keepalived's rise/fall counting, timeouts, bad scripts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hagate.daemon.scripts import (
    FileProbe,
    ProcessProbe,
    ScriptRunner,
    ScriptSpec,
    ScriptStatus,
    resolve_command,
    run_command,
)


def _runner(rise: int = 1, fall: int = 1) -> tuple[ScriptRunner, list[ScriptStatus]]:
    seen: list[ScriptStatus] = []
    spec = ScriptSpec(name="chk", argv=("/bin/true",), rise=rise, fall=fall)
    return ScriptRunner(spec, lambda r: seen.append(r.status)), seen


def test_defaults_match_keepalived() -> None:
    spec = ScriptSpec(name="chk", argv=("/bin/true",))
    assert (spec.interval, spec.effective_timeout, spec.weight, spec.rise, spec.fall) == (
        1.0,
        1.0,
        0,
        1,
        1,
    )


def test_first_result_decides_at_once() -> None:
    r, seen = _runner(rise=3, fall=3)
    r.record(True)
    assert seen == [ScriptStatus.OK]
    r2, seen2 = _runner(rise=3, fall=3)
    r2.record(False)
    assert seen2 == [ScriptStatus.FAILED]


def test_fall_then_rise_counting() -> None:
    r, seen = _runner(rise=2, fall=3)
    r.record(True)  # OK at once
    r.record(False)
    r.record(False)
    assert seen == [ScriptStatus.OK]
    r.record(False)  # third failure in a row
    assert seen == [ScriptStatus.OK, ScriptStatus.FAILED]
    r.record(True)
    assert seen[-1] is ScriptStatus.FAILED
    r.record(True)  # second success in a row
    assert seen[-1] is ScriptStatus.OK


def test_interrupted_failures_do_not_fall() -> None:
    r, seen = _runner(rise=1, fall=2)
    r.record(True)
    for _ in range(5):
        r.record(False)
        r.record(True)
    assert seen == [ScriptStatus.OK]


def test_resolve_command(tmp_path: Path) -> None:
    assert resolve_command("true") is not None
    assert resolve_command("/nonexistent/x") is None
    f = tmp_path / "x.sh"
    f.write_text("#!/bin/sh\n")
    assert resolve_command(str(f)) is None  # not executable
    f.chmod(0o755)
    assert resolve_command(str(f)) == str(f)


def test_run_command_outcomes() -> None:
    async def go() -> list[tuple[str, int]]:
        return [
            await run_command(("/bin/sh", "-c", "exit 0"), 5),
            await run_command(("/bin/sh", "-c", "exit 3"), 5),
            await run_command(("/bin/sh", "-c", "kill -9 $$"), 5),
            await run_command(("/nonexistent/script",), 5),
        ]

    out = asyncio.run(go())
    assert out[0] == ("exited", 0)
    assert out[1] == ("exited", 3)
    assert out[2] == ("signalled", 9)
    assert out[3][0] == "exec_failed"


def test_hanging_script_is_killed_at_timeout_without_blocking() -> None:
    async def go() -> tuple[tuple[str, int], float, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        t = asyncio.get_running_loop().create_task(ticker())
        start = time.monotonic()
        # the child ignores nothing; a grandchild in the same group must die too
        res = await run_command(("/bin/sh", "-c", "sleep 30 & sleep 30"), 0.3)
        took = time.monotonic() - start
        t.cancel()
        return res, took, ticks

    res, took, ticks = asyncio.run(go())
    assert res == ("timed_out", 0)
    assert 0.25 < took < 2.0
    assert ticks >= 8  # the loop kept running while the script hung


def test_runner_end_to_end(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    script = tmp_path / "chk.sh"
    script.write_text(f"#!/bin/sh\ntest -e {flag}\n")
    script.chmod(0o755)
    spec = ScriptSpec(name="chk", argv=(str(script),), interval=0.05, rise=2, fall=2)

    async def go() -> list[ScriptStatus]:
        seen: list[ScriptStatus] = []
        r = ScriptRunner(spec, lambda r: seen.append(r.status))
        r.start(asyncio.get_running_loop())
        await _until(lambda: seen == [ScriptStatus.FAILED])
        flag.touch()
        await _until(lambda: seen[-1] is ScriptStatus.OK)
        r.stop()
        return seen

    assert asyncio.run(go()) == [ScriptStatus.FAILED, ScriptStatus.OK]


def test_missing_script_is_disabled() -> None:
    async def go() -> ScriptStatus:
        r = ScriptRunner(ScriptSpec(name="x", argv=("/nonexistent/chk",)), lambda r: None)
        r.start(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        return r.status

    assert asyncio.run(go()) is ScriptStatus.DISABLED


async def _until(pred: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.01)


def test_init_fail_starts_failed_and_needs_rise_successes() -> None:
    seen: list[ScriptStatus] = []
    spec = ScriptSpec(name="chk", argv=("/bin/true",), rise=2, init_fail=True)
    r = ScriptRunner(spec, lambda r: seen.append(r.status))
    assert r.status is ScriptStatus.FAILED
    r.record(True)
    assert seen == []
    r.record(True)
    assert seen == [ScriptStatus.OK]


def test_runs_as_the_script_user() -> None:
    import os
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to switch user")
    where = Path(tempfile.mkdtemp(prefix="hgtd-"))  # pytest's tmp dirs are root-only
    where.chmod(0o777)
    out = where / "uid"

    async def go() -> tuple[str, int]:
        return await run_command(("/bin/sh", "-c", f"id -u > {out}"), 5, user="nobody")

    import pwd

    try:
        assert asyncio.run(go()) == ("exited", 0)
        assert int(out.read_text()) == pwd.getpwnam("nobody").pw_uid
    finally:
        shutil.rmtree(where)


# ---- track_process / track_file probes -------------------------------------------------


def test_process_probe_matches_comm_or_full_command_and_params() -> None:
    by_name = ProcessProbe("nginx")
    assert by_name.matches("nginx", ()) and not by_name.matches("nginx-debug", ())
    long = ProcessProbe("a-very-long-process-name")  # comm holds 15 characters
    assert long.matches("a-very-long-pro", ())
    full = ProcessProbe("/usr/sbin/haproxy", ("-f", "/etc/h.cfg"), "exact", True)
    assert full.matches("haproxy", ("/usr/sbin/haproxy", "-f", "/etc/h.cfg"))
    assert not full.matches("haproxy", ("/usr/sbin/haproxy", "-f", "/etc/h.cfg", "-x"))
    partial = ProcessProbe("/bin/x", ("-a",), "partial", True)
    assert partial.matches("x", ("/bin/x", "-a", "-b"))
    initial = ProcessProbe("/bin/x", ("-a", "--conf"), "initial", True)
    assert initial.matches("x", ("/bin/x", "-a", "--config=/e")) and not initial.matches(
        "x", ("/bin/x", "-b", "--config")
    )


def test_process_probe_counts_running_processes_against_the_quorum(tmp_path: Path) -> None:
    """Against the real /proc: a sleep we start is seen; quorum_max 0 means must not run."""
    import subprocess
    import sys

    name = "hgt-probe-" + str(id(tmp_path) % 10000)
    code = f"import ctypes,time; ctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        probe = ProcessProbe(name[:15])
        deadline = time.monotonic() + 5
        while probe.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert probe() == (True, "1 running")
        assert ProcessProbe(name[:15], quorum=2)()[0] is False
        assert ProcessProbe(name[:15], quorum=0, quorum_max=0)()[0] is False
    finally:
        proc.kill()
        proc.wait()
    assert ProcessProbe(name[:15])() == (False, "0 running")


def test_file_probe_reads_a_number_as_keepalived(tmp_path: Path) -> None:
    path = tmp_path / "state"
    probe = FileProbe(str(path))
    assert probe() == (True, "value 0")  # missing: 0
    for text, value in (("0\n", 0), ("1\n", 1), ("0x10", 16), ("-3 extra", -3), ("7abc", 7)):
        path.write_text(text)
        assert probe.value() == value, text
    path.write_text("1\n")
    assert probe() == (False, "value 1")


def test_probe_runner_reports_without_exec(tmp_path: Path) -> None:
    path = tmp_path / "fault"
    seen: list[ScriptStatus] = []
    spec = ScriptSpec("file:f", (), interval=0.05, probe=FileProbe(str(path)))

    async def go() -> None:
        runner = ScriptRunner(spec, lambda r: seen.append(r.status))
        runner.start(asyncio.get_running_loop())
        await asyncio.sleep(0.12)
        path.write_text("1")
        await asyncio.sleep(0.15)
        runner.stop()

    asyncio.run(go())
    assert seen == [ScriptStatus.OK, ScriptStatus.FAILED]


def test_init_file_as_keepalived(tmp_path: Path) -> None:
    path = tmp_path / "state"
    FileProbe(str(path), init_file=5).initialise(startup=True)
    assert path.read_text() == "5\n"  # missing: written
    path.write_text("2\n")
    FileProbe(str(path), init_file=5).initialise(startup=True)
    assert path.read_text() == "2\n"  # present, no overwrite: kept
    FileProbe(str(path), init_file=7, overwrite=True).initialise(startup=False)
    assert path.read_text() == "2\n"  # overwrite is for start-up, not reload
    FileProbe(str(path), init_file=7, overwrite=True).initialise(startup=True)
    assert path.read_text() == "7\n"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    FileProbe(str(link), init_file=1, overwrite=True).initialise(startup=True)
    assert not (tmp_path / "elsewhere").exists()  # never written through a symlink
    FileProbe(str(tmp_path), init_file=1, overwrite=True).initialise(startup=True)  # a dir: logged


def test_file_runner_reports_each_new_number(tmp_path: Path) -> None:
    path = tmp_path / "level"
    seen: list[int | None] = []
    spec = ScriptSpec("file:f", (), interval=0.04, probe=FileProbe(str(path)))

    async def go() -> None:
        runner = ScriptRunner(spec, lambda r: seen.append(r.level))
        runner.start(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        path.write_text("3")
        await asyncio.sleep(0.1)
        path.write_text("4")  # still "failed" (non-zero): the number alone changed
        await asyncio.sleep(0.1)
        runner.stop()

    asyncio.run(go())
    assert seen == [0, 3, 4]
