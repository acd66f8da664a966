"""Run a scenario on a cluster: hosts, scripts and faults scheduled on the virtual-clock link.

Adverts go through the real codec and keepalived 2.2.7's receive checks
(:func:`hagate.vrrp.receive.check_packet`) on their way from sender to receiver; unicast
instances send only to their ``unicast_peer`` addresses.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from hagate.config.model import Config
from hagate.simulate.cluster import (
    Cluster,
    ClusterError,
    Host,
    ScriptModel,
    SimInstance,
    reload_host,
)
from hagate.simulate.link import Link, Node, TimelineEntry
from hagate.simulate.scenario import (
    Crash,
    Fail,
    Heal,
    Loss,
    Partition,
    Reload,
    Scenario,
    Start,
    Step,
    Stop,
    Write,
)
from hagate.vrrp.actions import StateChanged
from hagate.vrrp.advert import Advert, IPAddress
from hagate.vrrp.packet import encode
from hagate.vrrp.receive import Discarded, check_packet
from hagate.vrrp.state import State
from hagate.vrrp.syncgroup import SyncGroup
from hagate.vrrp.tracking import RiseFall

DOWN = "DOWN"  # crashed, or not started yet
STOPPED = "STOP"
SIGNIFICANT = {"event", "state", "priority", "vips", "discard", "group"}


@dataclass(frozen=True, slots=True)
class View:
    """One instance at one moment: state name, effective priority, VIPs held."""

    state: str
    priority: int | None
    vips: frozenset[IPAddress]


@dataclass(frozen=True, slots=True)
class Row:
    """A significant timeline entry and every instance's view right after it."""

    entry: TimelineEntry
    views: dict[str, View]


@dataclass(slots=True)
class Result:
    cluster: Cluster
    scenario: Scenario
    duration: float
    link: Link
    rows: list[Row] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # derived data (verdicts)
    reloaded: list[SimInstance] = field(default_factory=list)  # instances as reloads make them

    @property
    def keys(self) -> list[str]:
        return [i.key for i in self.cluster.instances()]

    @property
    def vips(self) -> list[IPAddress]:
        out: list[IPAddress] = []
        for inst in (*self.cluster.instances(), *self.reloaded):
            out.extend(v for v in inst.params.vips if v not in out)
        return out

    def instance(self, key: str) -> SimInstance:
        return next(i for i in self.cluster.instances() if i.key == key)

    def final(self) -> dict[str, View]:
        return self.rows[-1].views if self.rows else {}


@dataclass(slots=True)
class _HostRun:
    """Per-host run-time state: generation (bumped on crash/stop) and script counters."""

    host: Host
    generation: int = 0
    running: bool = False
    counters: dict[str, RiseFall] = field(default_factory=dict)
    groups: dict[str, SyncGroup] = field(default_factory=dict)  # fresh at every boot
    scripts: dict[str, ScriptModel] = field(default_factory=dict)  # as now configured
    levels: dict[str, int] = field(default_factory=dict)  # track_file numbers written

    def __post_init__(self) -> None:
        self.scripts = dict(self.host.scripts)


class Simulation:
    """Builds the link for ``cluster`` and schedules ``scenario`` on it."""

    def __init__(
        self,
        cluster: Cluster,
        scenario: Scenario,
        *,
        seed: int = 0,
        delay: float = 0.0005,
        record: bool = True,
        snapshots: bool = True,
    ) -> None:
        self.cluster = cluster
        self.scenario = scenario
        self.sims = {i.key: i for i in cluster.instances()}
        self.link = Link(
            delay=delay,
            rng=random.Random(seed),
            record_adverts=record,
            route=self._route,
            on_boot=self._on_boot,
        )
        self.hosts = {h.name: _HostRun(h) for h in cluster.hosts}
        self.failing: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
        self.result = Result(cluster, scenario, scenario.duration(), self.link)
        self._stopped: set[str] = set()
        self._views = {key: View(DOWN, None, frozenset()) for key in self.sims}
        self._dst = {key: self._destination(inst) for key, inst in self.sims.items()}
        # each reload step's new instances, mapped up front: a config the daemon would
        # refuse, or a change it would not apply in place, is a ClusterError before the run
        self._reloads: dict[int, tuple[list[SimInstance], Host]] = {}
        for i, step in enumerate(scenario.steps):
            if isinstance(step, Reload):
                host = cluster.host(step.node)
                assert host is not None
                self._reloads[i] = reload_host(cluster, host, Path(step.config))
                self.result.reloaded.extend(self._reloads[i][0])
        self._check_items(scenario)
        self._cache: tuple[Advert, IPAddress, IPAddress, bytes] | None = None
        for key, inst in self.sims.items():
            self.link.add_node(key, inst.params)
        if snapshots:
            self.link.listeners.append(self._snapshot)
        self._schedule()

    # ---- scheduling --------------------------------------------------------------------

    def _schedule(self) -> None:
        steps = self.scenario.steps
        for step in steps:
            if isinstance(step, Fail):
                self.failing.setdefault((step.node, step.item), []).append((step.start, step.end))
        for name in self.hosts:
            first = next((s for s in steps if _names(s, name)), None)
            if not (isinstance(first, Start) and not first.restart):
                self._at(0.0, partial(self._boot, name))
        for i, step in sorted(enumerate(steps), key=lambda s: _start_time(s[1])):
            if isinstance(step, Reload):
                self._at(step.at, partial(self._reload, step, *self._reloads[i]))
            else:
                self._step(step)

    def _check_items(self, scenario: Scenario) -> None:
        """A ``fail`` on a node that reloads may name what only a reloaded config tracks
        (the parser cannot know); a name no config of the node tracks is an error."""
        for step in scenario.steps:
            if not isinstance(step, Fail | Write):
                continue
            host = self.hosts[step.node].host
            known = host.items()
            for inst in self.result.reloaded:
                if inst.host == step.node:
                    known.update(inst.interfaces, inst.scripts)
            if step.item not in known:
                raise ClusterError(
                    f"fail {step.item} on {step.node}: no config of {step.node} tracks it "
                    f"(tracked: {', '.join(sorted(known)) or 'none'})"
                )

    def _at(self, time: float, fn: Callable[[], None]) -> None:
        self.link.at(time, fn)

    def _step(self, step: Step) -> None:
        if isinstance(step, Start):
            self._at(step.at, lambda: self._boot(step.node))
        elif isinstance(step, Crash):
            self._at(step.at, lambda: self._down(step.node, crash=True))
        elif isinstance(step, Stop):
            self._at(step.at, lambda: self._down(step.node, crash=False))
        elif isinstance(step, Fail):
            self._fail(step)
        elif isinstance(step, Write):
            self._at(step.at, lambda: self._write(step))
        elif isinstance(step, Partition):
            groups = step.groups or tuple((h,) for h in self.hosts)
            keyed = [[k for h in g for k in self._keys(h)] for g in groups]
            self.link.partition(*keyed, at=step.start)
            if step.end is not None:
                self.link.heal(at=step.end)
        elif isinstance(step, Heal):
            self.link.heal(at=step.at)
        elif isinstance(step, Loss):
            self._loss(step)

    def _keys(self, host: str) -> list[str]:
        return [i.key for i in self.hosts[host].host.instances]

    def _loss(self, step: Loss) -> None:
        keys = self._keys(step.node) if step.node else list(self.sims)
        where = f"on {step.node}'s adverts" if step.node else "on every advert"

        def set_rate(rate: float) -> None:
            for key in keys:
                self.link.set_loss(key, rate)
            self.link.note(None, f"loss {rate:.0%} {where}" if rate else f"no loss {where}")

        self._at(step.start, lambda: set_rate(step.rate))
        if step.end is not None:
            self._at(step.end, lambda: set_rate(0.0))

    def _write(self, step: Write) -> None:
        """A number written to a track_file: a weighted one moves the priority by number x
        weight, a weight-0 one is down while non-zero (as the daemon's file probe)."""
        run = self.hosts[step.node]
        run.levels[step.item] = step.value
        if run.running:
            first = self._keys(step.node)[0]
            self.link.note(first, f"scenario: {step.value} written to {step.item}")
            self._apply_level(run, step.item, step.value)

    def _apply_level(self, run: _HostRun, item: str, value: int) -> None:
        for key in self._keys(run.host.name):
            node = self.link.node(key)
            if item not in self.sims[key].interfaces or node.machine is None:
                continue
            if node.machine.tracker.level(item) is not None:
                self.link.set_tracked_level(key, item, value, at=self.link.now)
            else:
                self.link.set_tracked(key, item, value == 0, at=self.link.now)

    def _fail(self, step: Fail) -> None:
        run = self.hosts[step.node]

        def change(ok: bool) -> None:
            is_script = step.item in run.scripts  # a reload may have added it
            what = "starts failing" if is_script else "goes down"
            back = "succeeds again" if is_script else "comes back up"
            if run.running:
                first = self._keys(step.node)[0]
                self.link.note(first, f"scenario: {step.item} {back if ok else what}")
                if not is_script:
                    self._set_item(run, step.item, ok)

        self._at(step.start, lambda: change(False))
        if step.end is not None:
            self._at(step.end, lambda: change(True))

    # ---- hosts -------------------------------------------------------------------------

    def _boot(self, name: str) -> None:
        run = self.hosts[name]
        if run.running:
            self._down(name, crash=False)  # systemctl restart: SIGTERM, then start
        run.running = True
        run.generation += 1
        run.counters = {}
        run.groups = {}
        for inst in run.host.instances:
            if inst.sync_group is not None and inst.sync_group not in run.groups:
                run.groups[inst.sync_group] = SyncGroup(inst.sync_group)
        now = self.link.now
        for script, model in run.scripts.items():
            counter = RiseFall(model.rise, model.fall)
            counter.record(not self._is_failing(name, script, now))
            run.counters[script] = counter
            later = partial(self._script_run, name, script, run.generation)
            self._at(now + model.interval, later)
        for key in self._keys(name):
            self._stopped.discard(key)
            self.link.start(key, at=now)

    def _down(self, name: str, *, crash: bool) -> None:
        run = self.hosts[name]
        run.generation += 1
        run.running = False
        for key in self._keys(name):
            if crash:
                self.link.crash(key, at=self.link.now)
            else:
                self.link.shutdown(key, at=self.link.now)

    def _on_boot(self, node: Node) -> None:
        """The fresh machine's tracked items start from the scenario's and scripts' status."""
        inst = self.sims[node.name]
        run = self.hosts[inst.host]
        machine = node.machine
        assert machine is not None
        if inst.sync_group is not None:
            run.groups[inst.sync_group].join(machine)
        now = self.link.now
        for item in inst.interfaces:
            machine.set_tracked(now, item, not self._is_failing(inst.host, item, now))
        for item in inst.scripts:
            ok = run.counters[item].ok
            machine.set_tracked(now, item, bool(ok))
        for item, value in run.levels.items():  # a written track_file keeps its number
            if item not in inst.interfaces:
                continue
            if machine.tracker.level(item) is not None:
                machine.set_tracked_level(now, item, value)
            else:
                machine.set_tracked(
                    now, item, value == 0 and not self._is_failing(inst.host, item, now)
                )

    def _is_failing(self, host: str, item: str, t: float) -> bool:
        return any(
            start <= t and (end is None or t < end)
            for start, end in self.failing.get((host, item), ())
        )

    def _script_run(self, name: str, script: str, generation: int) -> None:
        run = self.hosts[name]
        if generation != run.generation:
            return
        now = self.link.now
        model = run.scripts[script]
        counter = run.counters[script]
        if counter.record(not self._is_failing(name, script, now)):
            assert counter.ok is not None
            self._set_item(run, script, counter.ok)
        self._at(now + model.interval, lambda: self._script_run(name, script, generation))

    def _set_item(self, run: _HostRun, item: str, ok: bool) -> None:
        for key in self._keys(run.host.name):
            inst = self.sims[key]
            if item in inst.interfaces or item in inst.scripts:
                self.link.set_tracked(inst.key, item, ok, at=self.link.now)

    def _reload(self, step: Reload, instances: list[SimInstance], staged: Host) -> None:
        """SIGHUP with ``step.config``: every instance reconfigured in place; scripts the
        new config adds start running, the others take their new interval and rise/fall
        at their next run (the daemon keeps a runner whose spec did not change)."""
        run = self.hosts[step.node]
        now = self.link.now
        self.link.note(self._keys(step.node)[0], f"scenario: reload with {step.config}")
        for name, model in staged.scripts.items():
            fresh = name not in run.scripts
            run.scripts[name] = model
            if fresh and run.running:
                counter = RiseFall(model.rise, model.fall)
                counter.record(not self._is_failing(step.node, name, now))
                run.counters[name] = counter
                later = partial(self._script_run, step.node, name, run.generation)
                self._at(now + model.interval, later)
        for inst in instances:
            old = self.sims[inst.key]
            self.sims[inst.key] = inst
            self._dst[inst.key] = self._destination(inst, staged.config)
            self.link.reconfigure(inst.key, inst.params, at=now)
            if not run.running:
                continue
            for item in inst.interfaces:
                if item not in old.interfaces:
                    ok = not self._is_failing(step.node, item, now)
                    self.link.set_tracked(inst.key, item, ok, at=now)
            for item in inst.scripts:
                status = run.counters.get(item)
                if item not in old.scripts and status is not None and status.ok is not None:
                    self.link.set_tracked(inst.key, item, status.ok, at=now)

    # ---- the wire ----------------------------------------------------------------------

    def _route(self, sender: Node, receiver: Node, advert: Advert) -> Advert | str | None:
        """keepalived 2.2.7's receive path for one advert from ``sender`` to ``receiver``."""
        s, r = self.sims[sender.name], self.sims[receiver.name]
        if r.receive.vrid != advert.vrid:
            return None  # another virtual router's advert (RFC 9568 §7.1: VRID check first)
        src, theirs = sender.address, receiver.address
        if src.version != theirs.version:
            return None
        if s.unicast_peers:
            if theirs not in s.unicast_peers:
                return None
            dst = theirs
        else:
            dst = self._dst[sender.name]
            if not r.unicast_peers and r.group_address not in (None, dst):
                return None  # another multicast group (mcast_dst_ip): never joined
        cache = self._cache
        if cache is not None and cache[0] is advert and cache[1] == src and cache[2] == dst:
            payload = cache[3]
        else:
            try:
                payload = encode(advert, src, dst, v3_checksum_as_v2=s.receive.v3_checksum_as_v2)
            except ValueError as exc:
                return f"cannot be sent: {exc}"
            self._cache = (advert, src, dst, payload)
        verdict = check_packet(r.receive, src, dst, 255, payload)
        if isinstance(verdict, Discarded):
            if verdict.reason.not_for_us:
                return None
            return f"discarded, {verdict.reason.value.replace('_', ' ')} ({verdict.detail})"
        return verdict.advert

    def _destination(self, inst: SimInstance, config: Config | None = None) -> IPAddress:
        """The multicast group ``inst`` sends to (mcast_dst_ip, else vrrp_mcast_group4/6)."""
        if inst.group_address is not None:
            return inst.group_address
        if config is None:
            host = self.cluster.host(inst.host)
            assert host is not None
            config = host.config
        defs = config.global_defs
        v4 = inst.params.primary_address.version == 4
        return defs.vrrp_mcast_group4 if v4 else defs.vrrp_mcast_group6

    # ---- observing ---------------------------------------------------------------------

    def _snapshot(self, entry: TimelineEntry) -> None:
        """Record the entry with every instance's view; only the entry's node can change."""
        if entry.kind not in SIGNIFICANT:
            return
        key = entry.node
        node = self.link.nodes.get(key)
        if node is not None:
            machine = node.machine
            stop = isinstance(entry.action, StateChanged) and entry.action.new is State.STOP
            if stop:
                self._stopped.add(key)
            if (
                machine is None
                or stop
                or (entry.kind == "event" and entry.text.startswith("crash"))
            ):
                state = STOPPED if key in self._stopped else DOWN
                self._views[key] = View(state, None, frozenset())
            else:
                vips = self._views[key].vips
                if len(vips) != len(node.vips) or not vips.issuperset(node.vips):
                    vips = frozenset(node.vips)
                self._views[key] = View(str(machine.state), machine.effective_priority, vips)
        self.result.rows.append(Row(entry, dict(self._views)))

    def run(self) -> Result:
        self.link.run(self.result.duration)
        return self.result


def _names(step: Step, host: str) -> bool:
    if isinstance(step, Crash | Start | Stop | Reload | Fail):
        return step.node == host
    return False


def _start_time(step: Step) -> float:
    if isinstance(step, Crash | Start | Stop | Reload | Heal | Write):
        return step.at
    return step.start


def simulate(cluster: Cluster, scenario: Scenario, *, seed: int = 0, record: bool = True) -> Result:
    """Run ``scenario`` on ``cluster`` to its end."""
    return Simulation(cluster, scenario, seed=seed, record=record).run()
