#!/usr/bin/env python3
"""Start-up time of VRRP daemons: launch to INITIALIZE -> BACKUP, and to the first advert.

A restarting node that takes a second to come up loses elections it should win (its peers
see no advert and take over). Each trial launches the daemon in a fresh lab node and times,
on one monotonic clock from just before the launch:

* backup: priority 100, no peer up: until the daemon logs that it entered BACKUP;
* master: priority 255 (the address owner goes MASTER at once): until its first advert
  reaches a second node (read off the wire there; unicast, so no group to join).

The ``python`` row is the floor under hagate: launch to exit of this Python running
``import asyncio`` (the interpreter and the event loop's imports, nothing of hagate).

Both daemons are launched the same way (`ip netns exec`), hagate with this Python
(`python -m hagate vrrp`), keepalived 2.2.7 as the lab runs it (`keepalived -n -l -D`).
hagate runs from cached bytecode as an installed package does (pip compiles it): a warm-up
launch fills a private PYTHONPYCACHEPREFIX even where PYTHONDONTWRITEBYTECODE is set;
``--cold`` measures the source-compiling start instead (a checkout without __pycache__).
The machine is shared: ours and keepalived alternate trial by trial, and the table gives
medians, spreads and the ratio from the same run.

Run as root:  .venv/bin/python bench/startup.py [--quick] [--trials N] [--json] [--cold]
              [--baseline-src DIR]   (DIR: an older checkout's src/, row hagate-base)
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from hagate.lab import Lab, LabError, Node
from hagate.lab.watch import AdvertSniffer

NODES = {"n1": "10.1.1.5/24", "peer": "10.1.1.50/24"}
IMPLS = ("hagate", "keepalived", "python")
BASELINE = "hagate-base"  # another hagate checkout (--baseline-src), e.g. before a change
CASES = ("backup", "master")
_BACKUP_MARK = {"hagate": "INITIALIZE -> BACKUP", "keepalived": "Entering BACKUP STATE"}
_BACKUP_MARK[BASELINE] = _BACKUP_MARK["hagate"]


def conf(priority: int) -> str:
    state = "MASTER" if priority == 255 else "BACKUP"
    return f"""global_defs {{
    router_id n1
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    unicast_src_ip 10.1.1.5
    unicast_peer {{
        10.1.1.50
    }}
    virtual_ipaddress {{
        10.1.1.100/24
    }}
}}
"""


@dataclass
class Row:
    impl: str
    case: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def _reader(stream: IO[bytes], lines: queue.Queue[tuple[float, str]]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put((time.monotonic(), raw.decode(errors="replace")))


def _spawn(
    lab: Lab, node: Node, impl: str, text: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[Any], float]:
    run_dir = lab.node_dir(node) / impl
    run_dir.mkdir(exist_ok=True)
    path = run_dir / "keepalived.conf"
    path.write_text(text)
    if impl in ("hagate", BASELINE):
        argv = [sys.executable, "-m", "hagate", "vrrp", "-f", str(path), "--run-dir", str(run_dir)]
    else:
        pids = [str(run_dir / f"k{s}.pid") for s in ("", "-vrrp", "-checkers")]
        for p in pids:
            subprocess.run(["rm", "-f", p], check=False)
        argv = ["keepalived", "-n", "-l", "-D", "-f", str(path), "-p", pids[0], "-r", pids[1]]
        argv += ["-c", pids[2]]
    t0 = time.monotonic()
    proc = node.spawn(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, t0


def _stop(node: Node, proc: subprocess.Popen[Any]) -> None:
    node.terminate(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    proc.wait(10)


def bytecode_env(lab: Lab, cold: bool) -> dict[str, str]:
    """hagate's environment: bytecode cached in the lab's directory, or none at all."""
    if cold:
        return {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(lab.tmpdir / "none")}
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(lab.tmpdir / "pycache")}


def trial(
    lab: Lab, impl: str, case: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> float:
    """Seconds from launch to BACKUP (case backup) or to the first advert seen (master)."""
    node, peer = lab.node("n1"), lab.node("peer")
    if impl == "python":
        t0 = time.monotonic()
        floor = node.spawn([sys.executable, "-c", "import asyncio"], env=env)
        floor.wait(timeout)
        return time.monotonic() - t0
    sniffer = AdvertSniffer(peer.netns) if case == "master" else None
    text = conf(255 if case == "master" else 100)
    if impl == BASELINE:
        env = {**(env or {}), "PYTHONPATH": os.environ.get("HAGATE_BASELINE_SRC", "")}
    proc, t0 = _spawn(lab, node, impl, text, env if impl in ("hagate", BASELINE) else None)
    try:
        if sniffer is not None:
            return sniffer.next(src="10.1.1.5", timeout=timeout).t - t0
        assert proc.stdout is not None
        lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        deadline = t0 + timeout
        seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                t, line = lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if _BACKUP_MARK[impl] in line:
                return t - t0
        raise LabError(f"{impl} did not reach BACKUP in {timeout} s:\n{''.join(seen[-20:])}")
    finally:
        if sniffer is not None:
            sniffer.close()
        _stop(node, proc)


def run(
    trials: int, impls: Sequence[str], progress: Callable[[str], None], cold: bool = False
) -> list[Row]:
    cases = {i: CASES if i != "python" else CASES[:1] for i in impls}  # the floor: once
    rows = {(i, c): Row(i, c, []) for c in CASES for i in impls if c in cases[i]}
    with Lab.create(prefix="bstart", nodes=NODES) as lab:
        env = bytecode_env(lab, cold)
        for impl in ("hagate", BASELINE):
            if impl in impls:
                trial(lab, impl, "backup", env)  # warm-up: fills the bytecode cache
        for n in range(trials):
            for case in CASES:
                for impl in impls if n % 2 == 0 else tuple(reversed(impls)):
                    if case not in cases[impl]:
                        continue
                    rows[impl, case].samples.append(trial(lab, impl, case, env))
            progress(f"trial {n + 1}/{trials}")
    return list(rows.values())


def table(rows: Sequence[Row]) -> str:
    out = ["case     impl         median   min      max      n    vs keepalived"]
    base = {r.case: r.median for r in rows if r.impl == "keepalived"}
    for r in rows:
        ratio = f"{r.median / base[r.case]:.1f}x" if r.case in base else ""
        out.append(
            f"{r.case:<8} {r.impl:<12} {r.median * 1000:6.0f}ms {min(r.samples) * 1000:6.0f}ms "
            f"{max(r.samples) * 1000:6.0f}ms {len(r.samples):<4} {ratio}"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="2 trials: a seconds-long smoke run")
    ap.add_argument("--impl", default=",".join(IMPLS), help="comma-separated: hagate,keepalived")
    ap.add_argument("--json", action="store_true", help="print the samples as JSON")
    ap.add_argument("--cold", action="store_true", help="hagate without cached bytecode")
    ap.add_argument(
        "--baseline-src",
        metavar="DIR",
        help=f"also run the hagate whose src/ is DIR (row {BASELINE}), e.g. an older commit "
        "unpacked with git archive",
    )
    args = ap.parse_args(argv)
    impls = [i for i in args.impl.split(",") if i]
    if args.baseline_src:
        os.environ["HAGATE_BASELINE_SRC"] = str(Path(args.baseline_src).resolve())
        impls.append(BASELINE)
    if bad := [i for i in impls if i not in (*IMPLS, BASELINE)]:
        ap.error(f"unknown --impl {','.join(bad)}")
    trials = 2 if args.quick else args.trials
    try:
        rows = run(trials, impls, lambda s: print(s, file=sys.stderr, flush=True), args.cold)
    except LabError as exc:
        print(f"bench/startup: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{**asdict(r), "median": r.median} for r in rows], indent=2))
    else:
        print("launch to BACKUP (logged) / to the first advert on the wire (master);")
        print("hagate " + ("compiling its sources (--cold)" if args.cold else "from bytecode"))
        print("machine shared with other work: compare the ratio, not the absolute numbers")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
