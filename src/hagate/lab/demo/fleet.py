"""A fleet of idle devices in the demo cluster: many agents, a sample probed by users.

The devices are spread over ``procs`` device namespaces (fleet0, fleet1, ... at 10.1.1.40+),
each running one ``python -m hagate.agent.fleet`` process (its share of the devices, every
one with its own certificate) in front of one small web service. A user process in the
user node probes ``sample`` of them through the VIP (``hagate.lab.demo.fleetprobe``). Both
write records on the lab's clock; :func:`hagate.lab.demo.fleetstats.storm` reads them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hagate.agent.redial import ScheduleKind
from hagate.lab import LabError
from hagate.lab.demo.fleetstats import Storm, parse_events, parse_probes, storm
from hagate.lab.demo.topology import DOMAIN, HTTP_PORT, TUNNEL_PORT, USER, VIP, WEB_PORT

if TYPE_CHECKING:
    from hagate.lab.demo.cluster import DemoCluster

PREFIX = "fd"  # fleet device names: fd0, fd1, ...
FIRST_ADDRESS = 40  # fleet<k> is 10.1.1.(40 + k)
MAX_PROCS = 50
# Agents started per second over all processes at bring-up (not measured, only waited for):
# 2,000/s of first, full handshakes left 10,000 agents timing out in the gateway's queue
# and, some runs, never all connected.
START_RATE = 400


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """How many devices, over how many agent processes, how many probed, which schedule."""

    devices: int
    procs: int = 0  # 0: one per 2,500 devices, at least 1, at most 8
    sample: int = 64
    schedule: ScheduleKind = ScheduleKind.STEADY
    # The agent processes' nice (0: the gateway's priority). In the lab 10,000 devices share
    # two cores with the gateway they dial; a positive nice models devices with CPUs of
    # their own. Measured (10,000 crash): it does not shorten the storm, the new master was
    # not starved but waiting for its agents (docs/fleet.md), so the default stays 0.
    nice: int = 0
    # Warm standby ([tunnel] standby_endpoints on both gateways): every agent also parks an
    # authenticated connection at the other node, promoted when that node takes the VIP.
    standby: bool = False

    def __post_init__(self) -> None:
        if self.devices < 1 or not 0 <= self.procs <= MAX_PROCS:
            raise ValueError(f"a fleet needs 1+ devices and at most {MAX_PROCS} processes")

    @property
    def processes(self) -> int:
        n = self.procs or min(8, max(1, -(-self.devices // 2500)))
        return min(n, self.devices)

    def shares(self) -> list[tuple[int, int]]:
        """(first index, count) of each agent process."""
        per, extra = divmod(self.devices, self.processes)
        out, first = [], 0
        for k in range(self.processes):
            count = per + (1 if k < extra else 0)
            out.append((first, count))
            first += count
        return out

    def sampled(self) -> list[int]:
        """Device indices the users probe: spread evenly over the fleet (every process)."""
        n = min(self.sample, self.devices)
        return sorted({round(i * self.devices / n) % self.devices for i in range(n)})

    def names(self) -> list[str]:
        return [f"{PREFIX}{i}" for i in range(self.devices)]


def fleet_nodes(plan: FleetPlan) -> dict[str, str]:
    """``Lab.create(nodes=...)`` entries of the fleet's device namespaces."""
    return {f"fleet{k}": f"10.1.1.{FIRST_ADDRESS + k}/24" for k in range(plan.processes)}


def issue_fleet(pki: Path, plan: FleetPlan) -> None:
    """One device certificate per fleet device (about 1 ms each)."""
    from hagate.pki.ca import Role, issue

    for name in plan.names():
        if not (pki / "issued" / "device" / name / "cert.pem").exists():
            issue(pki, Role.DEVICE, name, days=2)


POLICY_RULE = (
    "\n[[rule]]\n"
    'name = "fleet-web"\n'
    f'devices = ["{PREFIX}*"]\n'
    'services = ["web"]\n'
    'routes = ["http"]\n'
    "public = true\n"
)


class Tail:
    """The complete lines appended to a file since the last call (a torn last line waits).

    The bench polls the fleet's records five times a second during a storm; reading every
    file from its start each time cost the machine 10-25 % of a core at 10,000 agents, CPU
    the storm itself needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        return data[:cut].decode(errors="replace").splitlines(keepends=True)


class Fleet:
    """The fleet's processes in a running :class:`DemoCluster`, and their records."""

    def __init__(self, cluster: DemoCluster, plan: FleetPlan) -> None:
        self.cluster = cluster
        self.plan = plan
        self.dir = cluster.lab.tmpdir / "fleet"
        self.dir.mkdir(exist_ok=True)
        self.probes_path = self.dir / "probes.txt"
        self._procs: dict[str, subprocess.Popen[Any]] = {}
        self._event_tails = [Tail(self.events_path(k)) for k in range(plan.processes)]
        self._probe_tail = Tail(self.probes_path)
        self._events: list[tuple[float, int, bool]] = []
        self._probes: list[tuple[float, float, int, bool]] = []
        self._state: dict[int, bool] = {}  # each agent's latest record: up or down

    def events_path(self, k: int) -> Path:
        return self.dir / f"events{k}.txt"

    def _spawn(self, node: str, what: str, argv: list[str]) -> subprocess.Popen[Any]:
        with open(self.dir / f"{what}.log", "ab") as log:
            proc = self.cluster.lab.node(node).spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        self._procs[what] = proc
        return proc

    def start_web(self) -> None:
        www = str(self.cluster.shared / "www")
        for k in range(self.plan.processes):
            argv = [sys.executable, "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1"]
            self._spawn(f"fleet{k}", f"web{k}", [*argv, "--directory", www])

    def start_agents(self) -> None:
        pki = self.cluster.shared / "pki"
        for k, (first, count) in enumerate(self.plan.shares()):
            argv = [sys.executable, "-m", "hagate.agent.fleet", "--pki", str(pki)]
            argv += ["--gateway", f"{VIP}:{TUNNEL_PORT}", "--server-name", DOMAIN]
            argv += ["--prefix", PREFIX, "--first", str(first), "--count", str(count)]
            argv += ["--target", f"127.0.0.1:{WEB_PORT}", "--schedule", self.plan.schedule.value]
            argv += ["--events", str(self.events_path(k)), "--nice", str(self.plan.nice)]
            argv += ["--ramp-ms", f"{self.plan.processes * 1000 / START_RATE:g}"]
            self._spawn(f"fleet{k}", f"agents{k}", argv)

    def start_probe(self) -> None:
        argv = [sys.executable, "-m", "hagate.lab.demo.fleetprobe", "--vip", VIP]
        argv += ["--port", str(HTTP_PORT), "--domain", DOMAIN, "--prefix", PREFIX]
        argv += ["--indices", ",".join(map(str, self.plan.sampled()))]
        argv += ["--out", str(self.probes_path)]
        self._spawn(USER.key, "probe", argv)

    def wait_web(self, timeout: float = 15.0) -> None:
        for k in range(self.plan.processes):
            node = self.cluster.lab.node(f"fleet{k}")

            def up(node: Any = node) -> bool:
                try:
                    with node.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                        s.settimeout(0.5)
                        s.connect(("127.0.0.1", WEB_PORT))
                    return True
                except (OSError, LabError):
                    return False

            self.cluster.lab.wait_until(up, timeout, interval=0.05, what=f"web in fleet{k}")

    def connected(self) -> int:
        """Agents whose latest event is 'up' (from the records: no gateway is asked)."""
        self.events()
        return sum(self._state.values())

    def wait_connected(self, timeout: float) -> float:
        """Wait until every agent has a session; the seconds it took."""
        t0 = time.monotonic()
        while self.connected() < self.plan.devices:
            dead = [w for w, p in self._procs.items() if p.poll() is not None]
            if dead:
                raise LabError(f"fleet processes exited: {', '.join(dead)}")
            if time.monotonic() - t0 > timeout:
                raise LabError(
                    f"only {self.connected()} of {self.plan.devices} agents connected "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.25)
        return time.monotonic() - t0

    def events(self) -> list[tuple[float, int, bool]]:
        """Every agent record so far (read incrementally: only what was appended)."""
        for tail in self._event_tails:
            fresh = parse_events(tail.new_lines())
            self._events += fresh
            for _t, index, up in sorted(fresh):
                self._state[index] = up
        return self._events

    def probes(self) -> list[tuple[float, float, int, bool]]:
        self._probes += parse_probes(self._probe_tail.new_lines())
        return self._probes

    def storm(self, t0: float, until: float) -> Storm:
        n = len(self.plan.sampled())
        events = [e for e in self.events() if e[0] >= t0]  # the storm's, not bring-up's
        probes = [p for p in self.probes() if p[0] >= t0]
        return storm(events, probes, t0, self.plan.devices, n, until)

    def agent_pids(self) -> list[int]:
        return [p.pid for w, p in self._procs.items() if w.startswith("agents")]

    def exited(self) -> list[str]:
        procs = self._procs.items()
        return [f"{w} (exit {p.returncode})" for w, p in procs if p.poll() is not None]
