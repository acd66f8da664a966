"""The daemon: one asyncio loop driving every configured instance.

Start: load the config, check the lab guard, take the run directory (pid file, status
socket), remove VIPs a killed predecessor left behind, open one raw socket per (interface,
family), start the vrrp_scripts and the link monitor, then start the instances. SIGTERM /
SIGINT: every instance stops (a master sends priority 0 and drops its VIPs), notify_stop
runs, exit 0. SIGHUP: reload; unchanged instances keep running untouched, a config with
errors is refused and the running one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from hagate.config import Impact, Severity, load
from hagate.config import model as cfg
from hagate.daemon import vmac
from hagate.daemon.firewall import VipFirewall
from hagate.daemon.garp import GarpSender
from hagate.daemon.netlink import (
    AddressGone,
    LinkInfo,
    LinkMonitor,
    Netlink,
    NetlinkFailure,
    Vip,
)
from hagate.daemon.notify import Notifier
from hagate.daemon.plan import (
    BridgeError,
    InstancePlan,
    disabled_scripts,
    fifo_specs,
    plan_instance,
)
from hagate.daemon.runtime import Host, InstanceRuntime
from hagate.daemon.scripts import (
    FileProbe,
    ScriptRunner,
    ScriptSpec,
    ScriptStatus,
    default_script_user,
)
from hagate.daemon.sockets import VrrpSocket
from hagate.daemon.status import (
    LOCK_FILE,
    PID_FILE,
    STATUS_SOCKET,
    MetricsServer,
    SocketInUse,
    StatusServer,
)
from hagate.vrrp.syncgroup import SyncGroup

log = logging.getLogger("hagate.vrrp")

IPAddr = IPv4Address | IPv6Address
SockKey = tuple[str, int]  # (interface, address family)


class StartError(RuntimeError):
    """The daemon cannot start; the message says why (no traceback for the user)."""


LOAD_TIMEOUT = 10.0  # seconds a config load may take (at start and on SIGHUP)


@dataclass(frozen=True, slots=True)
class Options:
    config: Path
    run_dir: Path
    metrics: tuple[str, int] | None = None
    tmp_dir: Path | None = None  # keepalived.data/.stats/.json; None: $TMPDIR or /tmp


# keepalived's monitoring signals -> which file they write (hagate.daemon.monitor, imported
# when one arrives: nothing of it is on the start path). SIGJSON is SIGRTMIN + 2.
DUMP_SIGNALS = {signal.SIGUSR1: "data", signal.SIGUSR2: "stats", signal.SIGRTMIN + 2: "json"}


def load_config(path: Path) -> cfg.Config:
    """Load and vet a config: errors keepalived could not run with are refused."""
    if not path.exists():
        raise StartError(f"{path}: no such file")
    config, findings = load(path)
    fatal = [f for f in findings if f.severity is Severity.ERROR and f.impact is Impact.CANNOT_RUN]
    for f in findings:
        if f not in fatal:
            log.warning("config: %s", f)
    if fatal:
        raise StartError("configuration refused:\n  " + "\n  ".join(str(f) for f in fatal))
    if not config.vrrp_instances:
        raise StartError(f"{path}: no vrrp_instance to run")
    return config


async def load_config_off_loop(
    path: Path, timeout: float = LOAD_TIMEOUT, running: threading.Event | None = None
) -> cfg.Config:
    """:func:`load_config` in a worker thread, so that the event loop (adverts, timers,
    status socket) keeps running whatever the file does: a FIFO or a slow device in an
    include, a huge file. Past ``timeout`` the load is abandoned (StartError): the thread is
    a daemon thread, left to finish or block on its own, never joined. ``running`` (if
    given) is set while the thread runs, so that a caller can refuse to start another."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[cfg.Config] = loop.create_future()

    def deliver(result: cfg.Config | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            assert result is not None
            done.set_result(result)

    def work() -> None:
        result: cfg.Config | None = None
        error: BaseException | None = None
        try:
            result = load_config(path)
        except BaseException as exc:  # handed to the loop, which decides
            error = exc
        finally:
            if running is not None:
                running.clear()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(deliver, result, error)

    if running is not None:
        running.set()
    threading.Thread(target=work, name=f"config-load {path}", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        # Nobody will read the result: cancel it, so that a late error is not logged from a
        # finalizer as "never retrieved".
        done.cancel()
        raise StartError(
            f"{path}: loading the configuration did not finish in {timeout:g} s "
            "(a FIFO, device or huge file in an include?)"
        ) from None
    except StartError:
        raise
    except Exception as exc:  # the loader's own bug: reported, never a traceback
        raise StartError(f"{path}: cannot load the configuration: {exc!r}") from None


def lab_guard() -> None:
    """Refuse to run outside the namespace named by HAGATE_LAB_NETNS (when it is set)."""
    name = os.environ.get("HAGATE_LAB_NETNS")
    if not name:
        return
    try:
        from hagate.lab.guard import assert_in_netns
    except ImportError:  # pragma: no cover - the lab package is part of hagate
        assert_in_netns = _assert_in_netns
    try:
        assert_in_netns(name)
    except Exception as exc:
        raise StartError(str(exc)) from None


def _assert_in_netns(name: str) -> None:
    try:
        target = os.stat(f"/run/netns/{name}")
    except OSError:
        raise StartError(f"HAGATE_LAB_NETNS={name}: no such network namespace") from None
    mine = os.stat("/proc/self/ns/net")
    if (mine.st_dev, mine.st_ino) != (target.st_dev, target.st_ino):
        raise StartError(f"refusing to run: not inside network namespace {name!r}")


def _same_identity(a: InstancePlan, b: InstancePlan) -> bool:
    """What a reload cannot change in place: the instance is restarted if these differ."""
    keys = ("interface", "family", "sync_group")
    same = all(getattr(a, k) == getattr(b, k) for k in keys)
    vmac = (a.config.use_vmac, a.config.vmac_xmit_base) == (
        b.config.use_vmac,
        b.config.vmac_xmit_base,
    )
    same = same and vmac
    return same and (a.params.vrid, a.params.version) == (b.params.vrid, b.params.version)


def _same_plan(a: InstancePlan, b: InstancePlan) -> bool:
    keys = ("interface", "family", "source", "destinations", "multicast", "params", "receive",
            "vips", "excluded", "notify", "scripts", "interfaces", "sync_group",
            "group_notify", "unicast_ttl", "routes", "rules", "block_vips")  # fmt: skip
    return all(getattr(a, k) == getattr(b, k) for k in keys)


class Daemon:
    """``hagate vrrp``: run until SIGTERM/SIGINT; reload on SIGHUP."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.on_started: Callable[[], None] | None = None  # once start-up ended, either way
        self.config: cfg.Config | None = None
        self.runtimes: dict[str, InstanceRuntime] = {}
        self.sockets: dict[SockKey, VrrpSocket] = {}
        self.by_vrid: dict[SockKey, dict[int, InstanceRuntime]] = {}
        self.runners: dict[str, ScriptRunner] = {}
        self.groups: dict[str, SyncGroup] = {}  # vrrp_sync_group name -> its members
        self.links: dict[str, LinkInfo] = {}
        self.vmacs: dict[str, vmac.Vmac] = {}  # instance name -> its use_vmac macvlan
        self.sock_discards: dict[str, int] = {}
        self.unknown_vrid = 0
        self.started_at = 0.0
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._host: Host | None = None
        self._status: StatusServer | None = None
        self._metrics: MetricsServer | None = None
        self._monitor: LinkMonitor | None = None
        self._pidfile_owned = False
        self._lock_fd: int | None = None
        self._script_user: str | None = None
        self._loading = threading.Event()  # set while a config load thread runs
        self.load_timeout = LOAD_TIMEOUT

    # ---- top level --------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            await self._start(loop)
        except StartError:
            await self._close()
            raise
        finally:
            if self.on_started is not None:
                self.on_started()
        log.info(
            "hagate vrrp running: %d instance(s), config %s, run directory %s",
            len(self.runtimes),
            self.options.config,
            self.options.run_dir,
        )
        await self._stop.wait()
        log.info("stopping")
        await self._shutdown()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        lab_guard()
        self.config = config = await load_config_off_loop(self.options.config, self.load_timeout)
        self._take_run_dir()
        self.started_at = loop.time()
        self._script_user = default_script_user(config.global_defs.script_user)
        netlink = Netlink()
        try:
            garp = GarpSender()
        except PermissionError:
            netlink.close()
            raise StartError("raw sockets need root (CAP_NET_RAW)") from None
        g = config.global_defs
        self._host = Host(
            loop,
            netlink,
            garp,
            Notifier(self._script_user),
            g.vrrp_garp_interval,
            g.vrrp_gna_interval,
            VipFirewall(),  # runs nft only for a no_accept master
        )
        self._host.notifier.open_fifos(fifo_specs(config))
        self.links = await netlink.links()
        plans = await self._plan_all(config)
        # keepalived leaves VIPs behind after SIGKILL: remove ours before starting.
        stale = await netlink.remove_stale(v for p in plans.values() for v in p.all_vips)
        for vip in stale:
            log.warning("removed virtual address %s left behind by a previous run", vip)
        for what in await netlink.remove_stale_routes(plans.values()):
            log.warning("removed virtual %s left behind by a previous run", what)
        self._monitor = LinkMonitor(self._on_link, self._on_address_gone)
        await self._monitor.start()
        self.links = await netlink.links()  # nothing missed between dump and subscribe
        self._sync_scripts(config, plans, startup=True)
        for plan in plans.values():
            self._add_instance(plan, startup=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        for signum, kind in DUMP_SIGNALS.items():
            loop.add_signal_handler(signum, self._on_dump_signal, kind)
        self._status = StatusServer(self.options.run_dir / STATUS_SOCKET, self.snapshot)
        try:
            await self._status.start()
        except SocketInUse as exc:
            self._status = None  # not ours: leave it in place
            raise StartError(f"{exc}; give each node its own --run-dir") from None
        if self.options.metrics is not None:
            host, port = self.options.metrics
            self._metrics = MetricsServer(host, port, self.snapshot)
            try:
                await self._metrics.start()
            except OSError as exc:
                raise StartError(f"--metrics {host}:{port}: {exc.strerror or exc}") from None
            log.info("Prometheus metrics on http://%s:%d/metrics", host, self._metrics.port)

    async def _plan_all(self, config: cfg.Config) -> dict[str, InstancePlan]:
        assert self._host is not None
        disabled = disabled_scripts(config)
        for name in sorted(disabled):
            log.warning("Disabling track script %s since not found/accessible", name)
        plans: dict[str, InstancePlan] = {}
        seen: dict[tuple[str, int, int], str] = {}
        for inst in config.vrrp_instances:
            if inst.interface and inst.interface not in self.links:
                raise StartError(f"({inst.name}) interface {inst.interface} does not exist")
            try:
                addrs = await self._host.netlink.addresses(inst.interface or "")
            except NetlinkFailure as exc:
                raise StartError(f"({inst.name}) {exc}") from None
            link = self.links.get(inst.interface or "")
            try:
                plan = plan_instance(
                    config,
                    inst,
                    [a for a, _ in addrs],
                    disabled,
                    self._script_user,
                    mtu=link.mtu if link is not None else 1500,
                )
            except BridgeError as exc:
                raise StartError(str(exc)) from None
            if inst.use_vmac is not None:
                plan = await self._with_vmac(inst, plan)
            key = (plan.interface, plan.family, plan.params.vrid)
            if key in seen:
                raise StartError(
                    f"({inst.name}) VRID {key[2]} on {key[0]} (IPv{key[1]}) is already used by "
                    f"{seen[key]}"
                )
            seen[key] = inst.name
            plans[inst.name] = plan
        return plans

    async def _with_vmac(self, inst: cfg.VrrpInstance, plan: InstancePlan) -> InstancePlan:
        """use_vmac: make (or keep) the instance's macvlan and move its VIPs onto it; its
        adverts go out on it too, unless vmac_xmit_base or unicast (unicast adverts reach
        the base interface's own address, so the socket stays there)."""
        assert self._host is not None
        name = inst.use_vmac or vmac.default_name(plan.params.vrid)
        vm = self.vmacs.get(inst.name)
        if vm is None or (vm.name, vm.base, vm.xmit_base) != (name, plan.interface,
                                                               inst.vmac_xmit_base):  # fmt: skip
            try:
                vm = await asyncio.to_thread(
                    vmac.ensure,
                    name,
                    plan.interface,
                    plan.params.vrid,
                    plan.family,
                    inst.vmac_xmit_base,
                )
            except vmac.VmacError as exc:
                raise StartError(f"({inst.name}) {exc}") from None
            old = self.vmacs.pop(inst.name, None)
            if old is not None and old.name != name:
                await asyncio.to_thread(vmac.remove, old, tuple(self.vmacs.values()))
            self.vmacs[inst.name] = vm
            self.links = await self._host.netlink.links()
        on_vmac = plan.multicast and not inst.vmac_xmit_base

        def moved(vips: tuple[Vip, ...]) -> tuple[Vip, ...]:
            return tuple(
                dataclasses.replace(v, dev=name) if v.dev == plan.interface else v for v in vips
            )

        plan = dataclasses.replace(
            plan,
            interface=name if on_vmac else plan.interface,
            vips=moved(plan.vips),
            excluded=moved(plan.excluded),
        )
        if on_vmac and plan.family == 6 and inst.mcast_src_ip is None:
            # keepalived: an IPv6 VMAC sends from its own link-local (the virtual MAC's EUI-64)
            source = vmac.link_local(vm.mac)
            params = dataclasses.replace(plan.params, primary_address=source)
            plan = dataclasses.replace(plan, source=source, params=params)
        return plan

    async def _drop_vmacs(self, keep: set[str]) -> None:
        """Delete the macvlans of instances that no longer use one (after a reload, at exit)."""
        for name in [n for n in self.vmacs if n not in keep]:
            vm = self.vmacs.pop(name)
            if any(o.name == vm.name for o in self.vmacs.values()):
                continue
            try:  # pyroute2's blocking API, off the loop
                await asyncio.to_thread(vmac.remove, vm, tuple(self.vmacs.values()))
            except Exception as exc:  # the daemon is stopping or reloading: say so, go on
                log.error("use_vmac: cannot remove %s: %s", vm.name, exc)
                continue
            log.info("use_vmac: %s removed", vm.name)

    # ---- instances, sockets, scripts ---------------------------------------------------

    def _socket(self, ifname: str, family: int) -> tuple[SockKey, VrrpSocket]:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        key = (ifname, af)
        sock = self.sockets.get(key)
        if sock is None:
            table: dict[int, InstanceRuntime] = {}
            sock = self._open_socket(ifname, self.links[ifname].index, af, table)
            self.sockets[key] = sock
            self.by_vrid[key] = table
        return key, sock

    def _open_socket(
        self, ifname: str, index: int, af: int, table: dict[int, InstanceRuntime]
    ) -> VrrpSocket:
        assert self._host is not None
        try:
            sock = VrrpSocket(ifname, index, af)
        except PermissionError:
            raise StartError("raw sockets need root (CAP_NET_RAW)") from None
        except OSError as exc:
            raise StartError(f"{ifname}: cannot open VRRP socket: {exc.strerror}") from None
        sock.start(self._host.loop, functools.partial(self._on_packet, table), self._on_discard)
        return sock

    def _refilter(self, key: SockKey) -> None:
        sock, table = self.sockets.get(key), self.by_vrid.get(key)
        if sock is not None and table:
            sock.set_filter(frozenset(table))

    def _reopen_sockets(self, info: LinkInfo) -> None:
        """``info.name`` came back with a new index (deleted and re-created): a socket bound
        to the old one sends nothing ("No such device") and hears nothing. Open new ones on
        the new index, join the group again, and move the instances over."""
        assert self._host is not None
        for key in [k for k in self.sockets if k[0] == info.name]:
            old = self.sockets[key]
            if old.ifindex == info.index:
                continue
            table = self.by_vrid[key]
            try:
                new = self._open_socket(info.name, info.index, key[1], table)
            except StartError as exc:
                log.error("interface %s is back but %s", info.name, exc)
                continue
            for rt in table.values():
                self._join(new, rt.plan)
            self.sockets[key] = new
            old.close(self._host.loop)
            self._refilter(key)
            for rt in table.values():
                rt.rebind(new, info.mac)
            log.info(
                "interface %s is back with index %d (was %d): VRRP socket re-opened",
                info.name,
                info.index,
                old.ifindex,
            )

    def _add_instance(self, plan: InstancePlan, startup: bool = False) -> InstanceRuntime:
        """Run a new instance; ``startup``: one the daemon starts with, which waits out
        vrrp_startup_delay (counted from the daemon's start, also if it waits for scripts);
        one a reload adds starts at once."""
        assert self._host is not None
        key, sock = self._socket(plan.interface, plan.family)
        self._join(sock, plan)
        vm = self.vmacs.get(plan.name)
        mac = vm.mac if vm is not None else self.links[plan.interface].mac
        rt = InstanceRuntime(plan, sock, self._host, mac)
        if startup:
            rt.delay_until = self.started_at + plan.params.startup_delay
        self.runtimes[plan.name] = rt
        if plan.sync_group is not None:
            group = self.groups.setdefault(plan.sync_group, SyncGroup(plan.sync_group))
            group.join(rt.machine)
            self._link_peers(group)
        self.by_vrid[key][plan.params.vrid] = rt
        self._refilter(key)
        for item, ifname in plan.interfaces:
            link = self.links.get(ifname)
            rt.set_tracked(item, link is not None and link.usable)
        for item, spec in plan.scripts:
            runner = self.runners[spec.name]
            if runner.status in (ScriptStatus.OK, ScriptStatus.FAILED):
                _apply_result(rt, item, runner)
            elif rt.machine.tracker.item(item).weight == 0:
                rt.waiting.add(item)  # keepalived keeps the instance in INIT until it reports
        rt.ensure_worker()
        if not rt.waiting:
            rt.start()
        else:
            log.info(
                "%s: waiting for the first result of %s", plan.name, ", ".join(sorted(rt.waiting))
            )
        return rt

    def _link_peers(self, group: SyncGroup) -> None:
        """Each member's runtime drains the others: the group moves them together."""
        members = [self.runtimes[m.params.name] for m in group.members]
        for rt in members:
            rt.peers = tuple(p for p in members if p is not rt)

    def _join(self, sock: VrrpSocket, plan: InstancePlan) -> None:
        """Join the groups ``plan`` sends to (224.0.0.18 / ff02::12, or mcast_dst_ip and
        vrrp_mcast_group4/6): the peers' adverts go there too."""
        for group in plan.groups:
            try:
                sock.join_multicast(group)
            except OSError as exc:
                log.error("(%s) cannot join %s on %s: %s", plan.name, group, sock.ifname,
                          exc.strerror)  # fmt: skip

    def _leave_unused(self, key: SockKey) -> None:
        """Leave the groups no instance on this socket sends to any more."""
        sock = self.sockets.get(key)
        if sock is None:
            return
        wanted = {g for rt in self.by_vrid.get(key, {}).values() for g in rt.plan.groups}
        for group in sock.groups - wanted:
            sock.leave_multicast(group)

    async def _remove_instance(self, rt: InstanceRuntime, deleted: bool = False) -> None:
        await rt.stop(deleted=deleted)
        self.runtimes.pop(rt.name, None)
        group = rt.machine.sync
        if group is not None:
            group.leave(rt.name)
            self._link_peers(group)
        key = (rt.plan.interface, rt.sock.family)
        table = self.by_vrid.get(key, {})
        if table.get(rt.plan.params.vrid) is rt:
            del table[rt.plan.params.vrid]
            self._refilter(key)
            self._leave_unused(key)
        if not table and key in self.sockets:
            assert self._host is not None
            self.sockets.pop(key).close(self._host.loop)
            self.by_vrid.pop(key, None)

    def _sync_scripts(
        self, config: cfg.Config, plans: dict[str, InstancePlan], startup: bool = False
    ) -> None:
        """Run one runner per vrrp_script in use; keep runners whose spec did not change.
        A track_file's init_file is written first (``overwrite`` only at start, as
        keepalived, which leaves an existing file alone at reload)."""
        assert self._host is not None
        wanted: dict[str, ScriptSpec] = {}
        for plan in plans.values():
            for _, spec in plan.scripts:
                wanted[spec.name] = spec
        for name in list(self.runners):
            if name not in wanted or self.runners[name].spec != wanted[name]:
                self.runners.pop(name).stop()
        for name, spec in wanted.items():
            if name not in self.runners:
                runner = ScriptRunner(spec, self._on_script)
                self.runners[name] = runner
                if isinstance(spec.probe, FileProbe):
                    spec.probe.initialise(startup)
                runner.start(self._host.loop)

    # ---- events -----------------------------------------------------------------------

    def _on_packet(
        self, by_vrid: dict[int, InstanceRuntime], src: IPAddr, dst: IPAddr, ttl: int | None,
        payload: bytes,
    ) -> None:  # fmt: skip
        if len(payload) < 2:
            self._on_discard("too_short")
            return
        rt = by_vrid.get(payload[1])
        if rt is None:
            self.unknown_vrid += 1  # another virtual router's advert on this link
            return
        rt.receive(src, dst, ttl, payload)

    def _on_discard(self, reason: str) -> None:
        self.sock_discards[reason] = self.sock_discards.get(reason, 0) + 1

    def _on_script(self, runner: ScriptRunner) -> None:
        for rt in list(self.runtimes.values()):
            for item, spec in rt.plan.scripts:
                if spec.name != runner.spec.name:
                    continue
                _apply_result(rt, item, runner)
                if item in rt.waiting:
                    rt.waiting.discard(item)
                    if not rt.waiting:
                        rt.start()

    def _on_link(self, info: LinkInfo) -> None:
        old = self.links.get(info.name)
        self.links[info.name] = info
        if self._host is not None:
            gone = info.flags == 0  # RTM_DELLINK
            self._host.netlink.forget(info.name, None if gone else info.index)
            if not gone:
                self._reopen_sockets(info)
        if old is not None and old.usable == info.usable:
            return
        log.info("interface %s is %s", info.name, "up" if info.usable else "down")
        for rt in list(self.runtimes.values()):
            for item, ifname in rt.plan.interfaces:
                if ifname == info.name:
                    rt.set_tracked(item, info.usable)

    def _on_address_gone(self, event: AddressGone) -> None:
        """RTM_DELADDR: one of our VIPs deleted by someone else (keepalived: "If one of our
        VIPs/eVIPs has been deleted, transition to backup", then back after Skew_Time)."""
        if self._host is None or self._host.netlink.ours(event.address):
            return  # our own removal
        names = {name for name, link in self.links.items() if link.index == event.index}
        for rt in list(self.runtimes.values()):
            for vip in rt.plan.all_vips:
                if vip.address == event.address and vip.dev in names:
                    rt.address_gone(event.address)
                    break

    def write_dump(self, kind: str) -> Path | None:
        """SIGUSR1 / SIGUSR2 / SIGJSON: write keepalived.data / .stats / .json (whole, by
        rename); a failure is logged, the daemon carries on."""
        from hagate.daemon import monitor

        files = monitor.MonitorFiles(self.options.tmp_dir or monitor.default_tmp_dir())
        runtimes = list(self.runtimes.values())
        if kind == "data":
            path = files.data
            loop_now = self._host.loop.time() if self._host is not None else 0.0
            router_id = self.config.global_defs.router_id if self.config is not None else None
            pool = monitor.sockpool(runtimes)
            text = monitor.data_text(router_id, runtimes, self.runners, time.time(), loop_now, pool)
        elif kind == "stats":
            path, text = files.stats, monitor.stats_text(runtimes)
        else:
            path, text = files.json, monitor.json_text(runtimes)
        try:
            monitor.write_atomic(path, text)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror or exc)
            return None
        log.info("wrote %s", path)
        return path

    def _on_dump_signal(self, kind: str) -> None:
        try:
            self.write_dump(kind)
        except Exception:  # a bug in a dump must not stop the daemon
            log.exception("cannot write the %s dump", kind)

    def _on_sighup(self) -> None:
        assert self._host is not None
        self._host.loop.create_task(self.reload())

    async def reload(self) -> bool:
        """Re-read the config; True if applied. Unchanged instances are not touched."""
        if self._loading.is_set():
            log.error(
                "reload refused, keeping the running configuration: the previous load of %s "
                "has not finished",
                self.options.config,
            )
            return False
        async with self._reload_lock:
            try:
                config = await load_config_off_loop(
                    self.options.config, self.load_timeout, self._loading
                )
                assert self._host is not None
                self.links = await self._host.netlink.links()
                plans = await self._plan_all(config)
            except StartError as exc:
                log.error("reload refused, keeping the running configuration: %s", exc)
                return False
            kept, in_place = 0, []
            for name, rt in list(self.runtimes.items()):
                new = plans.get(name)
                if new is not None and _same_plan(rt.plan, new):
                    kept += 1
                    continue
                if new is not None and _same_identity(rt.plan, new):
                    in_place.append((rt, new))
                    continue
                log.info(
                    "%s: %s",
                    name,
                    "VRID, interface, family or sync group changed: restarting"
                    if new
                    else "removed: stopping",
                )
                await self._remove_instance(rt, deleted=new is None)
            self.config = config
            # the removed instances' last lines went to the FIFOs they were configured with
            self._host.notifier.reopen_fifos(fifo_specs(config))
            self._sync_scripts(config, plans)
            for rt, plan in in_place:
                self._update_instance(rt, plan)
            for name, plan in plans.items():
                if name not in self.runtimes:
                    self._add_instance(plan)
            await self._drop_vmacs({n for n, p in plans.items() if p.config.use_vmac is not None})
            log.info(
                "configuration reloaded: %d instance(s), %d unchanged, %d changed in place",
                len(plans),
                kept,
                len(in_place),
            )
            return True

    def _update_instance(self, rt: InstanceRuntime, plan: InstancePlan) -> None:
        """Apply a changed plan to a running instance without restarting it (same VRID,
        interface, family and sync group): its state stays unless the settings demand."""
        self._join(rt.sock, plan)
        rt.reconfigure(plan)
        self._leave_unused((plan.interface, rt.sock.family))
        for item, ifname in plan.interfaces:
            link = self.links.get(ifname)
            rt.set_tracked(item, link is not None and link.usable)
        for item, spec in plan.scripts:
            runner = self.runners[spec.name]
            if runner.status in (ScriptStatus.OK, ScriptStatus.FAILED):
                _apply_result(rt, item, runner)

    # ---- shutdown ---------------------------------------------------------------------

    async def _shutdown(self) -> None:
        for runner in self.runners.values():
            runner.stop()
        await asyncio.gather(*(rt.stop() for rt in self.runtimes.values()))
        if self._host is not None:
            if self._host.firewall is not None:
                await self._host.firewall.close()  # keepalived deletes its tables at exit
            await self._host.notifier.drain()
        await self._drop_vmacs(set())
        await self._close()

    async def _close(self) -> None:
        for closer in (self._status, self._metrics):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()
        if self._monitor is not None:
            self._monitor.close()
        host = self._host
        for sock in self.sockets.values():
            sock.close(host.loop if host else None)
        self.sockets.clear()
        if host is not None:
            host.notifier.close()
            host.garp.close()
            host.netlink.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *DUMP_SIGNALS):
                host.loop.remove_signal_handler(sig)
        if self._pidfile_owned:
            with contextlib.suppress(FileNotFoundError):
                (self.options.run_dir / PID_FILE).unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock file stays: unlinking it would race a starter
            self._lock_fd = None

    # ---- run directory ----------------------------------------------------------------

    def _take_run_dir(self) -> None:
        run_dir = self.options.run_dir
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartError(f"cannot create run directory {run_dir}: {exc.strerror}") from None
        # The lock is what excludes a second daemon (a deleted pid file does not free it);
        # the pid file is for people and scripts.
        try:
            fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StartError(f"cannot open {run_dir / LOCK_FILE}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StartError(
                f"another hagate vrrp holds {run_dir / LOCK_FILE}; give each node its own --run-dir"
            ) from None
        self._lock_fd = fd
        pidfile = run_dir / PID_FILE
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(pidfile.read_text().strip())
            if pid != os.getpid() and _alive(pid):
                raise StartError(
                    f"another hagate vrrp (pid {pid}) uses {run_dir}; give each node its own "
                    "--run-dir"
                )
        pidfile.write_text(f"{os.getpid()}\n")
        self._pidfile_owned = True

    # ---- status -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        loop_time: Callable[[], float] = (
            self._host.loop.time if self._host is not None else (lambda: 0.0)
        )
        instances = []
        for rt in self.runtimes.values():
            scripts: list[dict[str, object]] = []
            for item, spec in rt.plan.scripts:
                runner = self.runners.get(spec.name)
                scripts.append(
                    {
                        "name": spec.name,
                        "status": runner.status.value if runner else "unknown",
                        "weight": rt.machine.tracker.item(item).weight,
                        "last_exit": runner.last_exit if runner else "",
                    }
                )
            instances.append(rt.snapshot(scripts))
        return {
            "pid": os.getpid(),
            "config": str(self.options.config),
            "uptime": round(loop_time() - self.started_at, 3),
            "instances": instances,
            "discards_unknown_vrid": self.unknown_vrid,
            "socket_discards": dict(self.sock_discards),
            "sockets": [
                {
                    "interface": ifname,
                    "family": 4 if af == socket.AF_INET else 6,
                    "ifindex": sock.ifindex,
                    "vrids": sorted(sock.vrids),
                    "kernel_drops": sock.kernel_drops(),
                    "receive_buffer": sock.receive_buffer(),
                }
                for (ifname, af), sock in self.sockets.items()
            ],
        }


def _apply_result(rt: InstanceRuntime, item: str, runner: ScriptRunner) -> None:
    """A runner's result on one tracked item: a weighted track_file passes its number,
    everything else OK/failed."""
    tracker = rt.machine.tracker
    if runner.level is not None and tracker.level(item) is not None:
        rt.set_tracked_level(item, runner.level)
    else:
        rt.set_tracked(item, runner.status is ScriptStatus.OK)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return b"hagate" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
