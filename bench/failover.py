#!/usr/bin/env python3
"""Failover time and idle cost of VRRP daemons in a network-namespace lab.

Failover: a pair (n1 priority 250, n2 priority 200, unicast, VIP 10.1.1.100/24) and a client
on one bridge. Each trial starts both daemons, waits until n1 holds the VIP, waits a random
part of an advert interval, then crashes (SIGSTOP+SIGKILL) or SIGTERMs n1, and measures from
that moment until the client sees n2's gratuitous ARP and until n2's interface shows the VIP.
Phase-locked crash rows instead crash n1 right after one of its adverts reaches n2 and measure
from that advert, so the result is Master_Down_Interval plus the daemon's own delay.
Idle cost: CPU-s per minute (utime+stime over a window) and RSS/PSS of master and backup with
1 and 100 instances at VRRPv3 advert_int 0.1 s.

Run as root:  .venv/bin/python bench/failover.py [--quick] [--impl keepalived,hagate] [--json]
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hagate.lab import Lab, LabError, Node, procs
from hagate.lab.guard import netns_path
from hagate.lab.keepalived import master_down_interval, pair
from hagate.lab.watch import AdvertSniffer

NODES = {"n1": "10.1.1.5/24", "n2": "10.1.1.10/24", "client": "10.1.1.50/24"}
PEERS = [("n1", "10.1.1.5", 250), ("n2", "10.1.1.10", 200)]
VIP = "10.1.1.100"


class Phase(StrEnum):
    """When in n1's advert cycle the kill lands."""

    RANDOM = "random"  # 0.2 s + a random part of advert_int after the election
    LOCKED = "locked"  # right after an advert from n1 reached n2; timed from that advert


Scenario = tuple[int, float, str, Phase]  # VRRP version, advert_int, kill, phase
SCENARIOS: list[Scenario] = [
    (2, 1.0, "crash", Phase.RANDOM),
    (2, 1.0, "sigterm", Phase.RANDOM),
    (3, 0.1, "crash", Phase.RANDOM),
    (3, 0.1, "sigterm", Phase.RANDOM),
]
LOCKED_SCENARIOS: list[Scenario] = [
    (2, 1.0, "crash", Phase.LOCKED),
    (3, 0.1, "crash", Phase.LOCKED),
]


# -- implementations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    name: str
    start: Callable[[Lab, Node, str], subprocess.Popen[Any]]
    check: Callable[[], str | None]  # None when usable, else why not
    log_name: str


def _keepalived_missing() -> str | None:
    try:
        subprocess.run(["keepalived", "--version"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "keepalived is not installed"
    return None


def _hagate_missing() -> str | None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "hagate", "vrrp", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"hagate vrrp cannot run: {exc}"
    if done.returncode != 0 or "--run-dir" not in done.stdout:
        return "`hagate vrrp -f CONF --run-dir DIR` is not available yet"
    return None


IMPLS = {
    "keepalived": Impl("keepalived", Lab.start_keepalived, _keepalived_missing, "keepalived.log"),
    "hagate": Impl("hagate", Lab.start_hagate, _hagate_missing, "hagate/hagate.log"),
}


def _log_tail(lab: Lab, node: Node, impl: Impl, lines: int = 5) -> str:
    path = lab.tmpdir / node.name / impl.log_name
    try:
        return " | ".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- failover -----------------------------------------------------------------------------


@dataclass
class FailoverRow:
    """One scenario of one implementation; times in seconds from the kill (RANDOM) or from
    n1's last advert (LOCKED)."""

    impl: str
    version: int
    advert_int: float
    kill: str
    phase: Phase = Phase.RANDOM
    garp_s: list[float] = field(default_factory=list)
    vip_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    available: bool = True
    master_down_s: float | None = None  # LOCKED: Master_Down_Interval of n2 (priority 200)
    beyond_mdi_s: list[float] = field(default_factory=list)  # LOCKED: garp_s - master_down_s
    lag_s: list[float] = field(default_factory=list)  # LOCKED: advert received -> n1 stopped

    @property
    def label(self) -> str:
        return f"{self.impl} v{self.version} {self.advert_int:g}s {self.kill} {self.phase}"


def _reset(lab: Lab) -> None:
    """No daemon running and no VIP left anywhere (keepalived leaves it after SIGKILL)."""
    for node in lab.nodes.values():
        node.crash()
        node.run(["ip", "addr", "del", f"{VIP}/24", "dev", node.ifname], check=False)


def _elect(lab: Lab, impl: Impl, version: int, advert_int: float) -> None:
    """Start both daemons afresh and wait until n1 alone holds the VIP."""
    n1, n2 = lab.node("n1"), lab.node("n2")
    _reset(lab)
    confs = pair(version=version, advert_int=advert_int, vips=[f"{VIP}/24"], unicast=True,
                 nodes=PEERS)  # fmt: skip
    p1 = impl.start(lab, n1, confs["n1"])
    p2 = impl.start(lab, n2, confs["n2"])
    mdi = master_down_interval(version, advert_int, 250)
    try:  # n2 may win the first election if it starts first; n1 then preempts it
        lab.wait_until(
            lambda: n1.has_address(VIP) and not n2.has_address(VIP),
            timeout=2 * mdi + 5,
            what="n1 to become master",
        )
    except LabError:
        dead = [
            (n, node) for n, p, node in (("n1", p1, n1), ("n2", p2, n2)) if p.poll() is not None
        ]
        if dead:
            raise LabError(f"{dead[0][0]} exited: {_log_tail(lab, dead[0][1], impl)}") from None
        raise LabError("no stable election: n1 did not become the only VIP holder") from None


def _trial(lab: Lab, impl: Impl, version: int, advert_int: float, kill: str) -> tuple[float, float]:
    """Random phase: (client sees GARP, VIP on n2), seconds from the kill of n1."""
    n1, n2, client = lab.node("n1"), lab.node("n2"), lab.node("client")
    _elect(lab, impl, version, advert_int)
    garp = client.watch_garp()
    addrs = n2.watch_addresses()
    try:
        time.sleep(0.2 + random.uniform(0, advert_int))  # kill at a random phase of the adverts
        if n2.has_address(VIP) or not n1.has_address(VIP):
            raise LabError("the master changed before the kill")
        t0 = n1.crash() if kill == "crash" else n1.terminate(wait=False)
        limit = master_down_interval(version, advert_int, 200) + 3
        seen = garp.wait_for(VIP, after=t0, mac=n2.mac, timeout=limit)
        added = addrs.wait_for(VIP, after=t0, timeout=limit)
        if kill == "sigterm":
            n1.wait_exit(timeout=10)
        return seen.t - t0, added.t - t0
    finally:
        garp.stop()
        addrs.stop()


def _locked_trial(
    lab: Lab, impl: Impl, version: int, advert_int: float
) -> tuple[float, float, float]:
    """Phase-locked crash: (GARP, VIP, lag), seconds from the advert the crash was timed on.

    n1's adverts are read in n2's namespace (a raw protocol-112 socket gets a copy of what
    n2's daemon gets); right after one arrives, every process of n1 is stopped and killed as
    Node.crash() does. That advert restarted n2's Master_Down_Timer (RFC 3768 §6.4.2, RFC 9568
    §6.4.2), so from it n2 must wait Master_Down_Interval, and the rest is the daemon's delay.
    """
    n1, n2, client = lab.node("n1"), lab.node("n2"), lab.node("client")
    n1_ip = PEERS[0][1]
    _elect(lab, impl, version, advert_int)
    garp = client.watch_garp()
    addrs = n2.watch_addresses()
    sniffer = AdvertSniffer(n2.netns)
    try:
        time.sleep(0.2)  # as the random-phase rows: same time after the election
        if n2.has_address(VIP) or not n1.has_address(VIP):
            raise LabError("the master changed before the kill")
        pids = n1.pids()  # looked up beforehand: scanning /proc takes milliseconds
        advert = sniffer.next(src=n1_ip, timeout=3 * advert_int + 1)
        procs.signal_all(pids, signal.SIGSTOP)
        stopped = time.monotonic()
        procs.signal_all(pids, signal.SIGKILL)
        n1.crash()  # anything else in n1's namespace; waits until all are gone
        limit = master_down_interval(version, advert_int, 200) + 3
        seen = garp.wait_for(VIP, after=advert.t, mac=n2.mac, timeout=limit)
        added = addrs.wait_for(VIP, after=advert.t, timeout=limit)
        if any(a.src == advert.src and a.t > advert.t for a in sniffer.drain()):
            raise LabError("n1 advertised again after the advert the crash was timed on")
        return seen.t - advert.t, added.t - advert.t, stopped - advert.t
    finally:
        sniffer.close()
        garp.stop()
        addrs.stop()


def _measure(lab: Lab, impl: Impl, row: FailoverRow) -> str:
    """One trial of ``row``'s scenario, recorded in ``row``; returns the log line."""
    if row.phase is Phase.RANDOM:
        garp_s, vip_s = _trial(lab, impl, row.version, row.advert_int, row.kill)
        row.garp_s.append(garp_s)
        row.vip_s.append(vip_s)
        return f"GARP {garp_s * 1000:.0f} ms, VIP {vip_s * 1000:.0f} ms"
    garp_s, vip_s, lag_s = _locked_trial(lab, impl, row.version, row.advert_int)
    mdi = row.master_down_s or 0.0
    row.garp_s.append(garp_s)
    row.vip_s.append(vip_s)
    row.lag_s.append(lag_s)
    row.beyond_mdi_s.append(garp_s - mdi)
    return (
        f"from advert: GARP {garp_s * 1000:.0f} ms ({(garp_s - mdi) * 1000:+.0f} beyond "
        f"Master_Down_Interval), VIP {vip_s * 1000:.0f} ms, n1 stopped {lag_s * 1000:.2f} ms "
        "after its advert"
    )


def run_failover(
    impls: Sequence[Impl], trials: int, scenarios: Sequence[Scenario], log: Callable[[str], None]
) -> list[FailoverRow]:
    """Every scenario for every implementation, trials interleaved between implementations
    (alternating which goes first) so that a changing machine load hits both alike."""
    rows = {
        (impl.name, scenario): FailoverRow(impl.name, *scenario) for impl in impls
        for scenario in scenarios
    }  # fmt: skip
    for row in rows.values():
        if row.phase is Phase.LOCKED:
            row.master_down_s = master_down_interval(row.version, row.advert_int, 200)
    usable = []
    for impl in impls:
        reason = impl.check()
        if reason is None:
            usable.append(impl)
            continue
        for scenario in scenarios:
            rows[impl.name, scenario].available = False
            rows[impl.name, scenario].failures.append(reason)
        log(f"{impl.name}: not available ({reason})")
    if usable:
        with Lab.create(prefix="hgb", nodes=NODES) as lab:
            for scenario in scenarios:
                for i in range(trials):
                    for impl in usable if i % 2 == 0 else usable[::-1]:
                        row = rows[impl.name, scenario]
                        try:
                            log(f"{row.label} #{i + 1}: {_measure(lab, impl, row)}")
                        except LabError as exc:
                            row.failures.append(str(exc))
                            log(f"{row.label} #{i + 1}: {exc}")
            _reset(lab)
    return list(rows.values())


# -- idle cost ----------------------------------------------------------------------------


@dataclass
class IdleRow:
    impl: str
    instances: int
    role: str
    cpu_s_per_min: float | None = None
    rss_mb: float | None = None
    pss_mb: float | None = None
    processes: int = 0
    window_s: float = 0.0
    failure: str | None = None


def _holds_all(
    master: Node, backup: Node, ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> bool:
    return ips <= {a.ip for a in master.addresses()} and not ips & {
        a.ip for a in backup.addresses()
    }


def _vips(count: int) -> list[str]:
    if count > 250:
        raise LabError("at most 250 instances")
    return [f"10.1.2.{i + 1}/24" for i in range(count)]


def run_idle(
    impl: Impl,
    counts: Sequence[int],
    window: float,
    log: Callable[[str], None],
    settle: float = 1.0,
) -> list[IdleRow]:
    rows: list[IdleRow] = []
    reason = impl.check()
    if reason:
        for count in counts:
            for role in ("master", "backup"):
                rows.append(IdleRow(impl.name, count, role, failure=reason))
        return rows
    for count in counts:
        with Lab.create(prefix="hgb", nodes={"n1": NODES["n1"], "n2": NODES["n2"]}) as lab:
            n1, n2 = lab.node("n1"), lab.node("n2")
            vips = _vips(count)
            vip_ips = {ipaddress.ip_interface(v).ip for v in vips}
            confs = pair(version=3, advert_int=0.1, vips=vips, unicast=True, nodes=PEERS,
                         count=count, first_vrid=1)  # fmt: skip
            impl.start(lab, n2, confs["n2"])
            impl.start(lab, n1, confs["n1"])
            try:
                lab.wait_until(
                    functools.partial(_holds_all, n1, n2, vip_ips),
                    timeout=30,
                    what=f"n1 to hold all {count} VIPs and n2 none",
                )
            except LabError as exc:
                for role in ("master", "backup"):
                    rows.append(IdleRow(impl.name, count, role, failure=str(exc)))
                continue
            time.sleep(settle)  # past the start-up burst (GARPs, delayed GARPs, first adverts)
            nodes = {"master": n1, "backup": n2}
            pids = {role: procs.pids_in_netns(netns_path(n.netns)) for role, n in nodes.items()}
            before = {role: procs.sample(p) for role, p in pids.items()}
            time.sleep(window)
            for role in ("master", "backup"):
                after = procs.sample(pids[role])
                span = after.t - before[role].t
                row = IdleRow(
                    impl.name,
                    count,
                    role,
                    cpu_s_per_min=(after.cpu_s - before[role].cpu_s) / span * 60,
                    rss_mb=after.rss_kb / 1024,
                    pss_mb=after.pss_kb / 1024,
                    processes=len(pids[role]),
                    window_s=span,
                )
                rows.append(row)
                log(
                    f"{impl.name} idle {count} x v3 0.1s {role}: "
                    f"{row.cpu_s_per_min:.2f} CPU-s/min, RSS {row.rss_mb:.1f} MB, "
                    f"PSS {row.pss_mb:.1f} MB ({row.processes} processes)"
                )
    return rows


# -- report -------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values) * 1000
    return f"{med:.0f} [{min(values) * 1000:.0f}-{max(values) * 1000:.0f}]"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _key(r: FailoverRow) -> tuple[int, float, str, Phase]:
    return r.version, r.advert_int, r.kill, r.phase


def _signed_ms(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values) * 1000
    return f"{med:+.0f} [{min(values) * 1000:+.0f}..{max(values) * 1000:+.0f}]"


def beyond_mdi_diffs(failover: list[FailoverRow]) -> list[dict[str, Any]]:
    """Phase-locked rows: hagate - keepalived of the median delay beyond Master_Down_Interval."""
    base = {_key(r): r for r in failover if r.impl == "keepalived"}
    out = []
    for r in failover:
        k = base.get(_key(r))
        if r.impl != "hagate" or r.phase is not Phase.LOCKED or k is None:
            continue
        if r.beyond_mdi_s and k.beyond_mdi_s:
            diff = statistics.median(r.beyond_mdi_s) - statistics.median(k.beyond_mdi_s)
            out.append({"what": f"v{r.version} {r.advert_int:g}s crash", "diff_s": diff})
    return out


def ratios(failover: list[FailoverRow], idle: list[IdleRow]) -> list[dict[str, Any]]:
    """hagate / keepalived for every measurement both produced."""
    out: list[dict[str, Any]] = []
    base = {_key(r): r for r in failover if r.impl == "keepalived"}
    for r in failover:
        k = base.get(_key(r))
        if r.impl != "hagate" or k is None:
            continue
        phase = " phase-locked" if r.phase is Phase.LOCKED else ""
        out.append(
            {
                "what": f"failover v{r.version} {r.advert_int:g}s {r.kill}{phase}",
                "garp": _ratio(_median(r.garp_s), _median(k.garp_s)),
                "vip": _ratio(_median(r.vip_s), _median(k.vip_s)),
            }
        )
    ibase = {(i.instances, i.role): i for i in idle if i.impl == "keepalived"}
    for i in idle:
        ki = ibase.get((i.instances, i.role))
        if i.impl != "hagate" or ki is None:
            continue
        out.append(
            {
                "what": f"idle {i.instances} instances {i.role}",
                "cpu": _ratio(i.cpu_s_per_min, ki.cpu_s_per_min),
                "rss": _ratio(i.rss_mb, ki.rss_mb),
                "pss": _ratio(i.pss_mb, ki.pss_mb),
            }
        )
    return out


def _fmt_ratio(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, float) else "-"


def _print_locked(rows: list[FailoverRow]) -> None:
    print(
        "\nPhase-locked crash: ms from n1's last advert (kernel receive time in n2's namespace;"
        "\nn1 is stopped right after it), median [min-max]; MDI = Master_Down_Interval of n2"
    )
    head = f"{'impl':<11}{'VRRP':<6}{'advert':<8}{'n':>3}  {'MDI':>5}  "
    print(
        head
        + f"{'client sees GARP':<20}{'VIP on n2':<20}{'GARP - MDI':<20}{'n1 stopped after':<16}"
    )
    for r in rows:
        lead = f"{r.impl:<11}{'v' + str(r.version):<6}{r.advert_int:<8g}"
        if not r.available:
            print(f"{lead}{'':>3}  not available")
            continue
        mdi = f"{(r.master_down_s or 0) * 1000:>5.0f}"
        lag = f"{statistics.median(r.lag_s) * 1000:.2f} ms" if r.lag_s else "-"
        if r.lag_s:
            lag += f" (max {max(r.lag_s) * 1000:.2f})"
        fails = f"  ({len(r.failures)} failed)" if r.failures else ""
        print(
            f"{lead}{len(r.garp_s):>3}  {mdi}  {_ms(r.garp_s):<20}{_ms(r.vip_s):<20}"
            f"{_signed_ms(r.beyond_mdi_s):<20}{lag}{fails}"
        )
    diffs = beyond_mdi_diffs(rows)
    for d in diffs:
        print(
            f"  {d['what']}: hagate takes over {d['diff_s'] * 1000:+.1f} ms vs keepalived "
            "beyond Master_Down_Interval (difference of medians)"
        )


def print_table(failover: list[FailoverRow], idle: list[IdleRow]) -> None:
    print("\nFailover: ms from the kill of master n1 at a random phase (median [min-max])")
    head = f"{'impl':<11}{'VRRP':<6}{'advert':<8}{'kill':<9}{'n':>3}  "
    print(head + f"{'client sees GARP':<22}{'VIP on n2':<22}")
    for r in failover:
        if r.phase is not Phase.RANDOM:
            continue
        lead = f"{r.impl:<11}{'v' + str(r.version):<6}{r.advert_int:<8g}{r.kill:<9}"
        if not r.available:
            print(f"{lead}{'':>3}  not available")
            continue
        fails = f"  ({len(r.failures)} failed)" if r.failures else ""
        print(f"{lead}{len(r.garp_s):>3}  {_ms(r.garp_s):<22}{_ms(r.vip_s):<22}{fails}")
    locked = [r for r in failover if r.phase is Phase.LOCKED]
    if locked:
        _print_locked(locked)
    if idle:
        print("\nIdle cost: VRRPv3 advert_int 0.1 s, unicast pair")
        print(
            f"{'impl':<11}{'instances':>10}  {'role':<8}{'CPU-s/min':>10}{'RSS MB':>9}{'PSS MB':>9}"
        )
        for i in idle:
            lead = f"{i.impl:<11}{i.instances:>10}  {i.role:<8}"
            if i.failure:
                print(f"{lead}not available ({i.failure})")
                continue
            print(f"{lead}{i.cpu_s_per_min:>10.2f}{i.rss_mb:>9.1f}{i.pss_mb:>9.1f}")
    rat = ratios(failover, idle)
    if rat:
        print("\nhagate / keepalived (medians)")
        for item in rat:
            parts = [f"{k} {_fmt_ratio(v)}" for k, v in item.items() if k != "what"]
            print(f"  {item['what']:<40}" + ", ".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per scenario (10)")
    parser.add_argument("--quick", action="store_true", help="1 trial, short idle window")
    parser.add_argument("--impl", default="keepalived,hagate", help="keepalived,hagate")
    parser.add_argument(
        "--instances", default=None, help="idle instance counts (1,100; --quick: 1,10)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="idle: wait after election before measuring, s (6: past keepalived's delayed GARPs)",
    )
    parser.add_argument("--window", type=float, default=20.0, help="idle window, s (20)")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-cost part")
    parser.add_argument("--no-failover", action="store_true", help="skip the failover part")
    parser.add_argument(
        "--no-phase-lock",
        action="store_true",
        help="skip the phase-locked crash rows (crash right after an advert of n1)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.impl.split(",") if n.strip()]
    unknown = [n for n in names if n not in IMPLS]
    if unknown or not names:
        parser.error(f"--impl takes keepalived and/or hagate, not {','.join(unknown) or '-'}")
    try:
        counts = [
            int(c) for c in (args.instances or ("1,10" if args.quick else "1,100")).split(",")
        ]
    except ValueError:
        parser.error("--instances takes a comma-separated list of integers")
    if any(not 1 <= c <= 250 for c in counts):
        parser.error("--instances: each count must be 1..250")
    trials, window = (1, 1.0) if args.quick else (args.trials, args.window)
    if trials < 1 or window <= 0 or args.settle < 0:
        parser.error("--trials and --window must be positive, --settle not negative")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    scenarios = list(SCENARIOS)
    if not args.no_phase_lock:  # --quick: only v3 0.1 s (a v2 1 s trial takes ~7 s)
        scenarios += [s for s in LOCKED_SCENARIOS if not args.quick or s[1] < 1]
    failover: list[FailoverRow] = []
    idle: list[IdleRow] = []
    try:
        if not args.no_failover:
            failover = run_failover([IMPLS[n] for n in names], trials, scenarios, log)
        for name in names:
            if not args.no_idle:
                idle += run_idle(
                    IMPLS[name], counts, window, log, 0.3 if args.quick else args.settle
                )
    except LabError as exc:
        print(f"failover bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        out = {
            "failover": [asdict(r) for r in failover],
            "idle": [asdict(r) for r in idle],
            "ratios": ratios(failover, idle),
            "beyond_mdi_diffs": beyond_mdi_diffs(failover),
        }
        print(json.dumps(out, indent=2))
    else:
        print_table(failover, idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
