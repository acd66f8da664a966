"""`hagate lab demo`: the seed's cluster in namespaces, a crash of the master, a timeline.

Every step is printed with the time since the start; the failover gets a live ticker of user
requests, then a table of milestones measured on one clock (``time.monotonic()``), and the
run ends with timeline.json, timeline.png and the lab torn down.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from hagate.lab import LabError, unavailable_reason
from hagate.lab.demo.cluster import DemoCluster, tail_of
from hagate.lab.demo.configs import STICKY_RECIPE, VrrpImpl
from hagate.lab.demo.demofleet import DemoFleet
from hagate.lab.demo.failover import crash, failover_bound, restore, watch
from hagate.lab.demo.options import DemoError, DemoOptions
from hagate.lab.demo.plot import plot_available, write_plot
from hagate.lab.demo.probe import Request, RequestLoop
from hagate.lab.demo.ticker import Ticker
from hagate.lab.demo.timeline import (
    Event,
    Phase,
    outage,
    render_table,
    timeline_data,
    write_json,
)
from hagate.lab.demo.topology import (
    DEVICE,
    GATEWAYS,
    NODE1,
    NODE2,
    NODES,
    USER,
    VIP,
    NodeSpec,
    device_host,
)
from hagate.vrrp.timers import master_down_interval


@dataclass
class Printer:
    """Numbered steps with the seconds since the demo started."""

    stream: TextIO
    start: float = field(default_factory=time.monotonic)
    step: int = 0

    def __call__(self, text: str) -> None:
        self.step += 1
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:5.1f} s] {self.step}. {text}", file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        for line in text.splitlines():
            print(f"           {line}", file=self.stream, flush=True)


# Long enough that a loaded machine (CI) does not fail healthy requests, shorter than the
# kernel's first SYN retransmission (1 s), so that a request never outlives an outage.
REQUEST_TIMEOUT = 0.8


def mostly_ok(requests: list[Request]) -> bool:
    """At least one request, 90 % of them OK, the last one too (a slow machine may time out
    a single request now and then without anything being wrong with the cluster)."""
    if not requests:
        return False
    return requests[-1].ok and sum(r.ok for r in requests) >= 0.9 * len(requests)


def preflight(opts: DemoOptions) -> None:
    """Refuse clearly, before creating anything, when the demo cannot run here."""
    opts.check()
    reason = unavailable_reason()
    if reason:
        raise DemoError(f"{reason}; the demo builds its own network namespaces (run as root)")
    if opts.keepalived and shutil.which("keepalived") is None:
        raise DemoError("--keepalived needs Debian's keepalived (apt-get install keepalived)")


def run_demo(opts: DemoOptions, stream: TextIO | None = None) -> int:
    """Run the demo; 0 when the cluster did everything the demo checks, else 1."""
    out = stream or sys.stdout
    preflight(opts)
    say = Printer(out)
    impl2 = "keepalived" if opts.keepalived else "hagate vrrp"
    form = f"VRRPv{opts.vrrp_version}, advert_int {opts.advert_int:g} s"
    recipe = "sticky recipe" if opts.sticky else "the seed's roles"
    print(f"hagate lab demo: {form}, {recipe}; node-1 hagate vrrp, node-2 {impl2}", file=out)
    try:
        opts.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create {opts.out}: {exc.strerror}") from None
    fleet = DemoFleet.plan_for(opts.devices) if opts.devices else None
    try:
        cluster = DemoCluster.create(opts.plan, opts.impls, prefix=opts.prefix, fleet=fleet)
    except LabError as exc:
        raise DemoError(f"cannot build the lab: {exc}") from None
    demo = _Demo(opts, cluster, say, out)
    try:
        demo.run()
    except LabError as exc:
        demo.failure = str(exc)
    except KeyboardInterrupt:
        demo.failure = "interrupted"
        demo.finish(plot=False)
        raise
    demo.finish()
    return 0 if demo.passed() else 1


class _Demo:
    """One run's state: the cluster, the request loop, the phases measured."""

    def __init__(self, opts: DemoOptions, cluster: DemoCluster, say: Printer, out: TextIO):
        self.opts = opts
        self.cluster = cluster
        self.say = say
        self.out = out
        self.loop: RequestLoop | None = None
        self.bound = failover_bound(opts.vrrp_version, opts.advert_int)
        self.phases: list[Phase] = []
        self.t0: float | None = None
        self.summary: dict[str, object] = {
            "one_master": False,
            "ok_before": False,
            "failover_complete": False,
            "failover_s": None,
            "failover_bound_s": round(self.bound, 3),
            "within_bound": False,
            "ok_after": False,
            "teardown_complete": None,
        }
        self.failure = ""
        plan = cluster.fleet_plan
        self.fleet = DemoFleet(cluster, plan) if plan is not None else None

    # -- the story -------------------------------------------------------------------------

    def run(self) -> None:
        c, say = self.cluster, self.say
        names = ", ".join(f"{n.label} {n.address}" for n in NODES)
        say(f"lab {c.lab.name}: {names}; VIP {VIP} (namespaces {c.lab.name}-*)")
        self._configs()
        c.start_web()
        if self.fleet is not None:
            self.fleet.start_web()
        for spec in GATEWAYS:
            c.start_gateway(spec)
        c.wait_web()
        for spec in GATEWAYS:
            c.wait_healthy(spec)
        say(
            f"hagate gateway up on node-1 and node-2 (same gateway.toml); device web service "
            f"on {DEVICE.label} 127.0.0.1"
        )
        self._election()
        c.start_agent()
        c.wait_agent(NODE1, 15.0)
        say("device agent connected to node-1's gateway through the VIP")
        if self.fleet is not None:
            n = self.fleet.plan.devices
            took = self.fleet.connect()
            say(f"fleet: {n:,} more devices connected in {took:.1f} s "
                f"({self.fleet.plan.processes} agent processes); users probe "
                f"{len(self.fleet.plan.sampled())} of them through the VIP")  # fmt: skip
        self._first_requests()
        self._failover()
        if self.opts.restore:
            self._restore()
        self._after()

    def _configs(self) -> None:
        c = self.cluster
        dest = self.opts.out / "configs"
        dest.mkdir(exist_ok=True)
        paths = []
        for spec in GATEWAYS:
            path = dest / f"{spec.label}.keepalived.conf"
            path.write_text(c.vrrp_confs[spec.key])
            paths.append(path)
        shutil.copyfile(c.gateway_toml, dest / "gateway.toml")
        shutil.copyfile(c.agent_toml, dest / "agent.toml")
        self.say(
            f"configs from the seed's pair written to {dest}/ (chk_httpd = hagate gateway check)"
        )
        try:
            from hagate.config.check import check

            report = check([str(p) for p in paths])
        except Exception as exc:  # the linter is a bonus here; never stop the demo for it
            self.say.detail(f"(hagate check unavailable: {exc})")
            return
        errors = sum(1 for f in report.findings if f.severity.name == "ERROR")
        self.say.detail(
            f"hagate check: {errors} error(s), {len(report.findings) - errors} warning(s)"
        )
        for finding in report.findings:
            text = str(finding).replace(f"{dest}/", "")
            self.say.detail(textwrap.fill(text, 88, subsequent_indent="    "))
        for note in report.notes:
            self.say.detail(textwrap.fill(note, 88, initial_indent="cluster: ",
                                          subsequent_indent="    "))  # fmt: skip

    def _election(self) -> None:
        c, say = self.cluster, self.say
        cs = round(self.opts.advert_int * 100)
        timeout = master_down_interval(self.opts.vrrp_version, 250, cs) + 10.0
        c.start_vrrp_pair(timeout)
        c.wait_backup(NODE2, 10.0)  # node-2 heard node-1's adverts: it stays BACKUP
        holders = [s.label for s in c.holders()]
        self.summary["one_master"] = holders == [NODE1.label]
        states = []
        for spec in GATEWAYS:
            state, reason = c.vrrp_state(spec)
            impl = "keepalived" if c.impls[spec.key] is VrrpImpl.KEEPALIVED else "hagate vrrp"
            states.append(f"{spec.label} ({impl}) {state}" + (f": {reason}" if reason else ""))
        say(f"one master: {' and '.join(holders) or 'nobody'} holds VIP {VIP}")
        for line in states:
            say.detail(line)

    def _first_requests(self) -> None:
        c, say = self.cluster, self.say
        loop = c.request_loop(self.opts.rate, REQUEST_TIMEOUT)
        self.loop = loop.start()
        started = time.monotonic()
        first = loop.wait_ok(started, 10.0)
        say(
            f"user -> http://{VIP}/ Host {device_host()}: 200 OK "
            f"({(first.end - first.start) * 1000:.0f} ms); {self.opts.rate:g} requests/s from now"
        )
        time.sleep(1.0)
        before = [
            r for r in loop.snapshot() if r.start >= first.start and r.end <= time.monotonic()
        ]
        n_ok = sum(r.ok for r in before)
        self.summary["ok_before"] = mostly_ok(before)
        say.detail(f"{n_ok}/{len(before)} requests OK before the crash")

    def _failover(self) -> None:
        c, say = self.cluster, self.say
        assert self.loop is not None
        bound = self.bound
        say("SIGKILL node-1 (the master): its VRRP daemon and gateway die without a word")
        change = crash(c, self.loop, NODE1, NODE2)
        phase, t0 = change.phase, change.after
        self.t0 = t0
        self.phases.append(phase)
        watch(change, 2 * bound + 5, 1.0, Ticker(t0, stream=self.out))
        self._follow_fleet(phase, t0, moves=True)
        first = phase.time_of("request")
        if first is not None:
            took = first - t0
            self.summary.update(
                failover_complete=True,
                failover_s=round(took, 3),
                within_bound=took <= bound,
            )
        gap = outage(self.loop.snapshot(), t0 - 1.0, phase.time_of("request") or time.monotonic())
        phase.note = (
            f"{gap['failed']} of {gap['sent']} requests failed; "
            f"longest run of failures {gap['longest_gap_s']} s"
        )
        phase.stats = gap
        say(f"failover measured (bound {bound:.2f} s):")
        print(render_table(phase, t0), file=self.out, flush=True)
        self._why(NODE2)
        if first is None:
            missing = ", ".join(change.missing())
            raise LabError(f"failover did not complete within {2 * bound + 5:.1f} s: no {missing}"
                           + self._logs_hint())  # fmt: skip

    def _restore(self) -> None:
        c, say = self.cluster, self.say
        assert self.loop is not None and self.t0 is not None
        say("restore node-1: start its gateway, then its VRRP daemon")
        change = restore(c, self.loop, NODE1, NODE2)
        phase, t_r = change.phase, change.after
        self.phases.append(phase)
        ticker = Ticker(t_r, stream=self.out)
        cs = round(self.opts.advert_int * 100)
        if self.opts.sticky:
            settle = master_down_interval(self.opts.vrrp_version, 250, cs) + 1.0
            watch(change, settle, 0.0, ticker)
            held = [s.label for s in c.holders()]
            state, _ = c.vrrp_state(NODE1)
            stayed = held == [NODE2.label] and phase.time_of("master") is None
            self.summary["sticky_held"] = stayed
            gap = outage(self.loop.snapshot(), t_r, time.monotonic())
            phase.stats = gap
            phase.note = f"{gap['failed']} of {gap['sent']} requests failed"
            say(
                f"node-1 is back as {state} and the VIP stays on {', '.join(held) or 'nobody'}: "
                + ("no second interruption (sticky)" if stayed else "it moved after all")
            )
            return
        watch(change, 2 * self.bound + 5, 1.0, ticker)
        self._follow_fleet(phase, t_r, moves=True)
        end = phase.time_of("request") or time.monotonic()
        gap = outage(self.loop.snapshot(), t_r, end)
        phase.stats = gap
        phase.note = (
            f"{gap['failed']} of {gap['sent']} requests failed; "
            f"longest run of failures {gap['longest_gap_s']} s"
        )
        self.summary["preempted"] = phase.time_of("master") is not None
        self.summary["preemption_failed_requests"] = gap["failed"]
        say("preemption measured:")
        print(render_table(phase, t_r), file=self.out, flush=True)
        self._why(NODE2)
        say.detail(
            "node-1 (state MASTER, priority 255, no nopreempt) took the VIP back as soon as it "
            "started;\nnode-2's nopreempt only keeps node-2 from preempting. The return cost "
            f"{gap['failed']} failed requests."
        )
        print(STICKY_RECIPE, file=self.out, flush=True)

    def _follow_fleet(self, phase: Phase, start: float, moves: bool) -> None:
        """With --devices: wait for the fleet too, and add its milestones to ``phase``."""
        if self.fleet is None:
            return
        n = self.fleet.plan.devices
        curve = self.fleet.follow(phase, start, moves, 2 * self.bound + 30 + n / 50)
        # the agent milestone is the first session of any agent now, not the demo device's
        phase.events = [
            Event(e.t, e.key, f"first agent (of {n + 1:,}) back on {e.label.rsplit(' ', 1)[-1]}",
                  e.phase) if e.key == "agent" else e
            for e in phase.events
        ]  # fmt: skip
        st = curve.storm
        if st.unreached:
            self.failure = self.failure or f"{st.unreached} sampled fleet devices unreachable"

    def _why(self, spec: NodeSpec) -> None:
        """The daemon's own reason for its last transition (hagate vrrp status)."""
        state, reason = self.cluster.vrrp_state(spec)
        if self.cluster.impls[spec.key] is VrrpImpl.HAGATE and reason:
            self.say.detail(f"{spec.label} says: {state}, because {reason}")

    def _after(self) -> None:
        assert self.loop is not None
        time.sleep(1.0)
        self.loop.stop()
        results = self.loop.snapshot()
        last = [r for r in results if r.start >= results[-1].start - 1.0] if results else []
        self.summary["ok_after"] = mostly_ok(last)
        n_ok = sum(r.ok for r in last)
        self.say(f"user requests at the end: {n_ok}/{len(last)} OK")

    # -- results and teardown ------------------------------------------------------------

    def _logs_hint(self) -> str:
        lines = []
        for spec in GATEWAYS:
            tail = tail_of(self.cluster.vrrp_log(spec), 5)
            if tail:
                lines.append(f"--- {spec.label} VRRP log:\n{tail}")
        tail = tail_of(self.cluster.log_path(DEVICE, "agent"), 5)
        if tail:
            lines.append(f"--- agent log:\n{tail}")
        return ("\n" + "\n".join(lines)) if lines else ""

    def passed(self) -> bool:
        s = self.summary
        keys = ["one_master", "ok_before", "failover_complete", "within_bound", "ok_after"]
        return not self.failure and all(s.get(k) for k in keys) and bool(s["teardown_complete"])

    def finish(self, plot: bool = True) -> None:
        """Stop requests, save logs, tear down (unless --keep), write timeline.json and PNG."""
        if self.loop is not None:
            self.loop.stop()
        c, opts, say = self.cluster, self.opts, self.say
        if self.failure:
            print(f"hagate lab demo: FAILED: {self.failure}", file=self.out, flush=True)
        logs = c.copy_logs(opts.out / "logs")
        if opts.keep:
            self._keep()
            self.summary["teardown_complete"] = True  # nothing to tear down yet, by request
        else:
            try:
                left = c.close()
            except LabError as exc:
                left = [str(exc)]
            self.summary["teardown_complete"] = not left
            if left:
                say(f"teardown INCOMPLETE: {', '.join(left)} (try: hagate lab down)")
            else:
                say(f"teardown complete: lab {c.lab.name} removed, no namespaces left")
        self._write(logs, plot)
        verdict = "PASS" if self.passed() else "FAIL"
        s = self.summary
        took = f"{s['failover_s']} s" if s["failover_s"] is not None else "not completed"
        print(f"demo {verdict}: failover to first user request {took}", file=self.out, flush=True)

    def _write(self, logs: list[Path], plot: bool) -> None:
        opts = self.opts
        t0 = self.t0 if self.t0 is not None else time.monotonic()
        requests = self.loop.snapshot() if self.loop is not None else []
        summary = dict(self.summary)
        summary["failure"] = self.failure
        summary["passed"] = self.passed()
        data = timeline_data(
            options=opts.as_dict(),
            lab=self.cluster.lab.name,
            t0=t0,
            phases=self.phases,
            requests=requests,
            summary=summary,
            fleet=self.fleet.summary(t0) if self.fleet is not None else None,
        )
        path = opts.out / "timeline.json"
        write_json(path, data)
        written = [str(path)]
        if plot and opts.plot and requests:
            why = plot_available()
            if why:
                self.say.detail(f"no PNG: {why}")
            else:
                png = opts.out / "timeline.png"
                title = (
                    f"hagate lab demo: VRRPv{opts.vrrp_version}, advert_int {opts.advert_int:g} s, "
                    f"node-2 {'keepalived' if opts.keepalived else 'hagate'}"
                )
                fleet = self.fleet.summary(t0) if self.fleet is not None else None
                write_plot(png, requests, self.phases, t0, title, fleet=fleet)
                written.append(str(png))
        self.say(f"wrote {', '.join(written)} (and {len(logs)} logs in {opts.out / 'logs'}/)")

    def _keep(self) -> None:
        c = self.cluster
        for watcher in [*c.addr_watchers.values(), c.garp]:
            if watcher is not None:
                watcher.stop()
        c.lab.detach()  # exit must not tear it down; `hagate lab down` will
        name = c.lab.name
        self.say(f"the lab is still up (--keep): namespaces {name}-*")
        self.say.detail(
            f"enter a node:    ip netns exec {name}-{USER.key} bash\n"
            f"ask the device:  ip netns exec {name}-{USER.key} curl -H 'Host: {device_host()}' "
            f"http://{VIP}/\n"
            f"VRRP status:     hagate vrrp status --run-dir {c.lab.node_dir(NODE1.key)}/hagate\n"
            f"logs, configs:   {c.lab.tmpdir}/\n"
            "remove it all:   hagate lab down"
        )
