"""One lab node: a network namespace with one veth "eth0" plugged into the lab's bridge."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from hagate.lab import firewall, netlink, procs, shell
from hagate.lab.errors import LabError
from hagate.lab.guard import ENV_VAR, netns_id, netns_path
from hagate.lab.nsenter import socket_in_netns
from hagate.lab.watch import AddressWatcher, GarpWatcher

_File = int | IO[Any] | None


@dataclass(eq=False)
class Node:
    """A node of a :class:`~hagate.lab.Lab`; every method acts only inside its namespace."""

    name: str
    netns: str
    address: ipaddress.IPv4Interface
    address6: ipaddress.IPv6Interface | None
    bridge_netns: str
    bridge_port: str  # the veth peer's name in the bridge namespace
    ifname: str = "eth0"
    ifindex: int = 0
    mac: str = ""
    _children: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)
    _watchers: list[GarpWatcher | AddressWatcher] = field(default_factory=list, repr=False)
    _nl: Any = field(default=None, repr=False)
    _nl_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- processes ----------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait; output captured as text."""
        return shell.run(
            ["ip", "netns", "exec", self.netns, *argv], input=input, check=check, timeout=timeout
        )

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stdout: _File = None,
        stderr: _File = None,
        stdin: _File = subprocess.DEVNULL,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (``env`` is added to this process's environment).

        Returns once the child is inside the namespace. It gets ``HAGATE_LAB_NETNS=<netns>``
        and is killed when the lab is torn down.
        """
        full_env = {**os.environ, **(env or {}), ENV_VAR: self.netns}
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                env=full_env,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
        except OSError as exc:
            raise LabError(f"cannot start {argv[0]} in {self.netns}: {exc.strerror}") from None
        self._children.append(proc)
        self._wait_entered(proc)
        return proc

    def _wait_entered(self, proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
        """Return once the child has joined the namespace (`ip netns exec` does setns first)."""
        target = netns_id(netns_path(self.netns))
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if netns_id(f"/proc/{proc.pid}/ns/net") == target:
                    return
            except OSError:
                return
            time.sleep(0.0005)

    def pids(self) -> list[int]:
        """Processes running in the namespace now."""
        return procs.pids_in_netns(netns_path(self.netns))

    def _live_children(self) -> list[int]:
        return [p.pid for p in self._children if p.returncode is None]

    def reap(self) -> None:
        """Collect exit status of our children that have ended (no zombies left behind)."""
        for proc in list(self._children):
            if proc.poll() is not None:
                self._children.remove(proc)

    def crash(self, timeout: float = 5.0) -> float:
        """SIGSTOP then SIGKILL every process in the namespace; returns the SIGSTOP time.

        Stopping first means no process gets to react (a keepalived child would otherwise get
        SIGTERM through PDEATHSIG when its parent dies, and hand over gracefully).
        """
        path = netns_path(self.netns)
        self.reap()
        t0 = time.monotonic()
        left = procs.kill_all(path, timeout, self.reap, self._live_children)
        if left:
            raise LabError(f"processes {left} in {self.netns} survived SIGKILL")
        return t0

    def terminate(self, timeout: float = 10.0, wait: bool = True) -> float:
        """SIGTERM every process in the namespace and wait for them; returns the SIGTERM time.

        Whatever is still running after ``timeout`` is killed and reported as a LabError.
        """
        path = netns_path(self.netns)
        self.reap()
        pids = sorted(set(procs.pids_in_netns(path)) | set(self._live_children()))
        t0 = time.monotonic()
        procs.signal_all(pids, signal.SIGTERM)
        if not wait:
            return t0
        left = procs.wait_gone(path, timeout, self.reap, extra=self._live_children)
        if left:
            procs.kill_all(path, 5.0, self.reap, self._live_children)
            raise LabError(f"processes {left} in {self.netns} ignored SIGTERM for {timeout:g} s")
        return t0

    def wait_exit(self, timeout: float = 10.0) -> None:
        """Wait until no process is left in the namespace (after ``terminate(wait=False)``)."""
        path = netns_path(self.netns)
        left = procs.wait_gone(path, timeout, self.reap, extra=self._live_children)
        if left:
            raise LabError(f"processes {left} in {self.netns} still running after {timeout:g} s")

    # -- addresses ----------------------------------------------------------------------

    def addresses(self) -> set[netlink.IPInterface]:
        """Addresses on the node's interface now (read over rtnetlink in its namespace)."""
        with self._nl_lock:
            if self._nl is None:
                self._nl = socket_in_netns(
                    self.netns, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE
                )
            try:
                return netlink.dump_addresses(self._nl, self.ifindex)
            except OSError as exc:
                raise LabError(f"cannot list addresses in {self.netns}: {exc}") from None

    def has_address(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """True if ``ip`` is configured on the node's interface."""
        want = ipaddress.ip_address(ip)
        return any(a.ip == want for a in self.addresses())

    def socket(
        self, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        """A new socket inside the node's namespace (the caller closes it)."""
        return socket_in_netns(self.netns, family, kind, proto)

    def watch_garp(self) -> GarpWatcher:
        """Start recording gratuitous ARP / unsolicited NA seen by this node."""
        watcher = GarpWatcher(self.netns, self.ifname)
        self._watchers.append(watcher)
        return watcher

    def watch_addresses(self) -> AddressWatcher:
        """Start recording addresses added to / removed from this node's interface."""
        watcher = AddressWatcher(self.netns, self.ifindex)
        self._watchers.append(watcher)
        return watcher

    # -- faults -------------------------------------------------------------------------

    def _nft(self, script: str) -> None:
        self.run(["nft", "-f", "-"], input=script)

    def partition(self) -> None:
        """Drop every frame in and out of the node (nftables, its namespace); link stays up."""
        self._nft(firewall.partition_rules(self.ifname))

    def heal(self) -> None:
        """Undo :meth:`partition`."""
        self._nft(firewall.delete_rules(firewall.PARTITION_TABLE))

    def loss(self, percent: float, direction: str = "egress") -> None:
        """Drop about ``percent`` % of frames at random (egress, ingress or both)."""
        self._nft(firewall.loss_rules(self.ifname, percent, direction))

    def clear_loss(self) -> None:
        """Undo :meth:`loss`."""
        self._nft(firewall.delete_rules(firewall.LOSS_TABLE))

    def link_down(self) -> None:
        """Carrier loss: the bridge-side veth goes down, so the node sees NO-CARRIER."""
        shell.ip("-n", self.bridge_netns, "link", "set", self.bridge_port, "down")

    def link_up(self) -> None:
        """Undo :meth:`link_down`."""
        shell.ip("-n", self.bridge_netns, "link", "set", self.bridge_port, "up")

    def carrier(self) -> bool:
        """True if the node's interface has carrier (LOWER_UP)."""
        return "LOWER_UP" in self.link_flags()

    def link_flags(self) -> list[str]:
        """The interface flags as `ip link` shows them (UP, LOWER_UP, NO-CARRIER, ...)."""
        done = shell.ip("-n", self.netns, "-j", "link", "show", "dev", self.ifname)
        try:
            flags: list[str] = json.loads(done.stdout)[0]["flags"]
        except (ValueError, LookupError, TypeError):
            raise LabError(f"cannot read link flags of {self.ifname} in {self.netns}") from None
        return flags

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop watchers, kill processes, close sockets (the namespace itself stays)."""
        for watcher in self._watchers:
            watcher.stop()
        self._watchers.clear()
        procs.kill_all(netns_path(self.netns), 5.0, self.reap, self._live_children)
        for proc in self._children:
            proc.kill()
            proc.wait()
        self._children.clear()
        with self._nl_lock:
            if self._nl is not None:
                self._nl.close()
                self._nl = None
