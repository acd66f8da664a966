"""Three active gateway nodes in namespaces (hagate vrrp + hagate gateway [cluster] each), a
3-member etcd on namespace addresses, devices on the VIP their name picks, a user entering
at every node. One lab for the module; the tests run in order, the node crash last."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest

from hagate.lab.multinode import MultiLab, Plan

pytestmark = pytest.mark.lab


def until(pred: Callable[[], object], timeout: float, what: str, ml: MultiLab) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s: {what}\n{ml.logs()[-6000:]}")
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def ml() -> Iterator[MultiLab]:
    # The gateways keep a silent agent's session 10 s: a move must be seen well before that.
    with MultiLab.create(Plan(dead_after_ms=10000)) as lab:
        lab.start_etcd()
        lab.start_nodes()
        for i in (1, 2, 3):
            lab.start_device(lab.plan.device_on(i))
        yield lab


def everywhere(ml: MultiLab, device: str, text: str) -> bool:
    return all(ml.get(i, device) == (200, text) for i in (1, 2, 3))


def test_a_user_on_each_node_reaches_a_device_on_each_node(ml: MultiLab) -> None:
    devices = [ml.plan.device_on(i) for i in (1, 2, 3)]
    for dev in devices:

        def there(d: str = dev) -> bool:
            return everywhere(ml, d, f"hello from {d}\n")

        until(there, 15, f"{dev} everywhere", ml)
    health = ml.cluster_health(1)
    per_node = health["devices_per_node"]
    assert per_node == {"n1": 1, "n2": 1, "n3": 1}, per_node
    assert health["etcd_endpoint"].startswith("https://"), health  # etcd over TLS
    # Their agents found their VIP in cluster.toml themselves ([gateway] cluster).
    assert "[gateway]\ncluster = " in next(ml.work.glob("agent-dev*.toml")).read_text()


def test_a_moved_device_is_never_reached_at_its_old_session(ml: MultiLab) -> None:
    dev = ml.plan.device_on(1)
    old = next(k for k in ml.agents if k.startswith(f"{dev}@"))
    ml.signal_agent(old, signal.SIGSTOP)  # n1 still holds its session (dead_after: 10 s)
    ml.start_device(dev, f"{dev} moved\n", vip=ml.plan.vip(2))
    seen_new: set[int] = set()

    def moved() -> bool:
        for i in (1, 2, 3):
            status, body = ml.get(i, dev)
            if i in seen_new:
                assert body != f"hello from {dev}\n", f"n{i} reached the old session again"
            if (status, body) == (200, f"{dev} moved\n"):
                seen_new.add(i)
        return len(seen_new) == 3

    took = until(moved, 10, f"{dev} moved to n2 everywhere", ml)
    assert took < 8.0  # well before n1's own timeout would have dropped the old session
    ml.signal_agent(old, signal.SIGKILL)
    for _ in range(10):
        assert everywhere(ml, dev, f"{dev} moved\n")


def test_two_sessions_of_one_device_resolve_to_the_newest(ml: MultiLab) -> None:
    dev = ml.plan.device_on(3)
    first = next(k for k in ml.agents if k.startswith(f"{dev}@"))
    twin = ml.start_device(dev, f"{dev} twin\n", vip=ml.plan.vip(1))
    until(lambda: everywhere(ml, dev, f"{dev} twin\n"), 10, "the newest session everywhere", ml)
    assert "n3" not in ml.cluster_health(1)["devices_per_node"]
    ml.signal_agent(twin, signal.SIGKILL)
    ml.signal_agent(first, signal.SIGKILL)


def test_etcd_member_loss_quorum_loss_and_return(ml: MultiLab) -> None:
    dev2 = ml.plan.device_on(2)
    ml.kill_etcd(1)  # 2 of 3: quorum holds
    late = ml.start_device("late1")
    until(lambda: everywhere(ml, "late1", "hello from late1\n"), 15, "attach with 2/3", ml)
    ml.kill_etcd(2)  # 1 of 3: no quorum
    until(
        lambda: all(ml.cluster_health(i).get("etcd") == "down" for i in (1, 2, 3)),
        10,
        "every node says etcd is down",
        ml,
    )
    health = ml.health(1) or {}
    assert health.get("ok") is True  # the node itself is healthy: VRRP must not move VIPs
    # Service goes on: devices attached before the outage, from every node.
    assert everywhere(ml, dev2, f"hello from {dev2}\n")
    assert everywhere(ml, "late1", "hello from late1\n")
    # A device that attaches during the outage is served by its own node at once.
    ml.start_device("late2")
    from hagate.cluster.layout import vip_for

    home = ml.plan.vips().index(vip_for("late2", ml.plan.vips())) + 1
    until(lambda: ml.get(home, "late2")[0] == 200, 10, "late2 at its own node", ml)
    ml.start_etcd(1)
    ml.start_etcd(2)
    took = until(
        lambda: everywhere(ml, "late2", "hello from late2\n"), 20, "caught up after return", ml
    )
    print(f"\nregistry caught up {took:.2f} s after etcd's return")
    assert all(ml.cluster_health(i).get("etcd") == "up" for i in (1, 2, 3))
    ml.signal_agent(late, signal.SIGKILL)


def test_a_node_crash_moves_its_vip_and_its_devices_follow(ml: MultiLab) -> None:
    dev2 = ml.plan.device_on(2)  # and dev of n1 that moved to n2
    moved = ml.plan.device_on(1)
    t0 = time.monotonic()
    ml.crash_node(2)
    until(lambda: ml.get(1, dev2) == (200, f"hello from {dev2}\n"), 15, f"{dev2} back", ml)
    back = time.monotonic() - t0
    until(lambda: everywhere_but(ml, 2, moved, f"{moved} moved\n"), 10, "moved device back", ml)
    until(lambda: "n2" not in ml.cluster_health(1).get("nodes", []), 10, "n2's lease gone", ml)
    held = ml.cluster_health(1).get("addresses", {})
    assert ml.plan.vip(2) in held.get("n3", []), held  # n3 says it holds n2's VIP now
    print(f"\nnode crash: device reachable from n1 again after {back:.2f} s")
    assert ml.cluster_health(3)["devices_per_node"].get("n2") is None


def everywhere_but(ml: MultiLab, down: int, device: str, text: str) -> bool:
    return all(ml.get(i, device) == (200, text) for i in (1, 2, 3) if i != down)


def test_a_graceful_stop_drops_its_records_at_once(ml: MultiLab) -> None:
    """After the crash of n2, n3 holds VIP 2 and 3; stopping it hands both to n1."""
    dev = ml.plan.device_on(2)
    until(lambda: ml.cluster_health(1).get("devices_per_node", {}).get("n3"), 10, "n3 has", ml)
    t0 = time.monotonic()
    ml.node("n3").terminate()
    until(lambda: "n3" not in ml.cluster_health(1).get("nodes", []), 5, "n3 gone", ml)
    gone = time.monotonic() - t0  # SIGTERM to every process of n3, until n1 no longer lists it
    assert gone < ml.plan.lease_ttl  # revoked, not expired
    until(lambda: ml.get(1, dev) == (200, f"hello from {dev}\n"), 10, f"{dev} at n1", ml)
    print(
        f"\ngraceful stop: n3's records gone after {gone:.2f} s, "
        f"{dev} served by n1 after {time.monotonic() - t0:.2f} s"
    )
