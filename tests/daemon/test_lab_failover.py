"""Two hagate nodes in a network-namespace lab: election, failover, recovery, tracking."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from hagate.lab import Lab
from hagate.vrrp.timers import master_down_interval, skew_time

from .labkit import (
    VIP,
    executable,
    holders,
    instance,
    log_of,
    run_dir,
    start,
    state_of,
    vrrp_conf,
    wait_ready,
    wait_single_holder,
    wait_state,
)

pytestmark = pytest.mark.lab

N1, N2 = "10.1.1.5", "10.1.1.10"
MARGIN = 0.15  # the brief's allowance over the protocol timers


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(
        prefix="hgtd", nodes={"n1": f"{N1}/24", "n2": f"{N2}/24", "client": "10.1.1.50/24"}
    ) as lab:
        yield lab


def seed(node: str, **kw: object) -> str:
    """The seed cluster: node-1 MASTER 255, node-2 BACKUP 200 nopreempt, unicast, PASS."""
    me, peer = (N1, N2) if node == "n1" else (N2, N1)
    base: dict[str, object] = {
        "state": "MASTER" if node == "n1" else "BACKUP",
        "priority": 255 if node == "n1" else 200,
        "nopreempt": node == "n2",
        "src": me,
        "peers": (peer,),
        "auth_pass": "your_pas",
    }
    base.update(kw)
    return vrrp_conf(**base)  # type: ignore[arg-type]


def test_seed_cluster_election_garp_crash_and_recovery(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    watch = lab.node("client").watch_garp()
    t0 = time.monotonic()
    start(lab, n1, seed("n1"))
    start(lab, n2, seed("n2"))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    assert watch.wait_for(ip=VIP, after=t0, timeout=5).mac == n1.mac
    wait_state(lab, n2, "BACKUP")
    time.sleep(1.2)  # n2 hears n1's adverts
    assert instance(lab, n2)["master"] == N1
    assert holders(lab, [n1, n2]) == ["n1"]

    # SIGKILL of the master: the backup takes the VIP within Master_Down_Interval.
    mdi = master_down_interval(2, 200, 100)
    t_crash = n1.crash()
    took = wait_single_holder(lab, [n2], "n2", mdi + 2)
    took = time.monotonic() - t_crash
    assert took <= mdi + MARGIN, f"takeover after {took:.3f} s, Master_Down_Interval {mdi:.3f}"
    watch.wait_for(ip=VIP, after=t_crash, timeout=2, mac=n2.mac)
    assert "BACKUP -> MASTER: master down timer expired: no advert from 10.1.1.5" in log_of(lab, n2)

    # Recovery: node-1 comes back (its VIP was left behind by SIGKILL) and takes over.
    assert n1.has_address(VIP)
    t_back = time.monotonic()
    start(lab, n1, seed("n1"))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP", 5)
    assert time.monotonic() - t_back < 3
    assert "removed virtual address 10.1.1.100/24 dev eth0 left behind" in log_of(lab, n1)
    assert instance(lab, n2)["last_transition"]["reason"].startswith("higher priority advert")


def test_sigterm_hands_over_within_skew_time(lab: Lab, tmp_path: object) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    out = lab.node_dir(n1) / "notify.out"
    notify = executable(lab.node_dir(n1) / "notify.sh", f'echo "$@" >> {out}')
    extra = f"    notify {notify}"
    start(lab, n1, seed("n1", version=3, advert_int=0.1, instance_extra=extra))
    start(lab, n2, seed("n2", version=3, advert_int=0.1))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP")
    time.sleep(0.3)
    skew = skew_time(3, 200, 10)
    t_term = n1.terminate(wait=False)
    wait_single_holder(lab, [n1, n2], "n2", 2)
    took = time.monotonic() - t_term
    assert took <= skew + MARGIN, f"handover after {took:.3f} s, Skew_Time {skew:.3f} s"
    n1.wait_exit(5)
    assert "priority 0 advert from 10.1.1.5" in instance(lab, n2)["last_transition"]["reason"]
    assert out.read_text().splitlines() == ["INSTANCE VI_1 MASTER 255", "INSTANCE VI_1 STOP 255"]
    assert not (run_dir(lab, n1) / "vrrp.sock").exists()


def test_sticky_recipe_keeps_the_vip_on_the_standby(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")

    def sticky(node: str) -> str:
        return seed(node, state="BACKUP", priority=150 if node == "n1" else 100, nopreempt=True,
                    version=3, advert_int=0.1)  # fmt: skip

    start(lab, n1, sticky("n1"))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    start(lab, n2, sticky("n2"))
    wait_state(lab, n2, "BACKUP")
    n1.crash()
    wait_state(lab, n2, "MASTER", 3)
    # SIGKILL left the VIP on n1; restarting removes it, and n1 stays BACKUP (nopreempt).
    start(lab, n1, sticky("n1"))
    wait_state(lab, n1, "BACKUP")
    time.sleep(1.0)  # more than Master_Down_Interval: n1 would have preempted by now
    assert holders(lab, [n1, n2]) == ["n2"]
    assert state_of(lab, n2) == "MASTER"
    assert instance(lab, n1)["master"] == N2


def test_failing_check_script_moves_mastership(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    flag = lab.node_dir(n1) / "healthy"
    flag.touch()
    chk = executable(lab.node_dir(n1) / "chk_httpd.sh", f"test -e {flag}")
    top = (
        "vrrp_script chk_httpd {\n"
        f'    script "{chk}"\n'
        "    interval 0.2\n    weight -50\n    rise 2\n    fall 3\n}\n"
    )
    start(lab, n1, seed("n1", priority=200, state="BACKUP", nopreempt=False, version=3,
                       advert_int=0.1, top=top, track_scripts=("chk_httpd",)))  # fmt: skip
    start(lab, n2, seed("n2", priority=180, state="BACKUP", nopreempt=False, version=3,
                       advert_int=0.1))  # fmt: skip
    wait_single_holder(lab, [n1, n2], "n1", 5)
    assert instance(lab, n1)["scripts"][0]["status"] == "ok"

    t_fail = time.monotonic()
    flag.unlink()
    wait_single_holder(lab, [n1, n2], "n2", 5)
    took = time.monotonic() - t_fail
    # fall 3 at interval 0.2: the third failed run ends 0.4-0.6 s (+ exec) after the flag
    # goes; n2 then ignores the lower priority adverts until its Master_Down_Interval ends.
    exec_slack = 0.1
    assert 0.35 <= took <= 0.6 + exec_slack + master_down_interval(3, 180, 10) + MARGIN, took
    inst = instance(lab, n1)
    assert (inst["effective_priority"], inst["base_priority"]) == (150, 200)
    reason = instance(lab, n2)["last_transition"]["reason"]
    assert reason.startswith("preempting lower priority master 10.1.1.5 (150 < 180)")

    t_ok = time.monotonic()
    flag.touch()
    wait_single_holder(lab, [n1, n2], "n1", 5)
    took = time.monotonic() - t_ok
    # rise 2, then n1 preempts after its own Master_Down_Interval
    assert 0.15 <= took <= 0.4 + exec_slack + master_down_interval(3, 200, 10) + MARGIN, took
    assert "priority 150 -> 200: tracked script chk_httpd recovered" in log_of(lab, n1)


def test_interface_down_is_fault_and_recovery(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, seed("n1", version=3, advert_int=0.1))
    start(lab, n2, seed("n2", version=3, advert_int=0.1))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP")
    n1.link_down()
    wait_state(lab, n1, "FAULT", 3)
    assert not n1.has_address(VIP)
    wait_single_holder(lab, [n1, n2], "n2", 3)
    n1.link_up()
    wait_single_holder(lab, [n1, n2], "n1", 5)  # priority 255 takes over again
    assert "interface eth0 failed (weight 0)" in log_of(lab, n1)


def test_partition_and_heal(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, seed("n1", priority=200, state="BACKUP", version=3, advert_int=0.1))
    start(lab, n2, seed("n2", priority=150, nopreempt=False, version=3, advert_int=0.1))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP")
    n1.partition()
    wait_state(lab, n2, "MASTER", 3)
    assert sorted(holders(lab, [n1, n2])) == ["n1", "n2"]  # split brain while partitioned
    t_heal = time.monotonic()
    n1.heal()
    wait_single_holder(lab, [n1, n2], "n1", 2)
    took = time.monotonic() - t_heal
    limit = 0.1 + skew_time(3, 150, 10) + MARGIN
    assert took <= limit, f"one master again after {took:.3f} s (limit {limit:.3f})"


def test_thirty_percent_loss_gives_no_takeover(lab: Lab) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    extra = "    down_timer_adverts 10"
    start(lab, n1, seed("n1", version=3, advert_int=0.1, instance_extra=extra))
    start(lab, n2, seed("n2", version=3, advert_int=0.1, instance_extra=extra))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP")
    n1.loss(30)
    before = instance(lab, n2)["counters"]["adverts_in"]
    time.sleep(4.0)  # 40 adverts, ~12 lost; 10 in a row would be needed for a takeover
    n1.clear_loss()
    after = instance(lab, n2)
    assert after["state"] == "BACKUP" and after["counters"]["transitions"] == 1
    received = after["counters"]["adverts_in"] - before
    assert 15 <= received <= 38, received  # loss really happened, most got through
    assert holders(lab, [n1, n2]) == ["n1"]


def test_sighup_reload_keeps_unchanged_and_refuses_bad_config(lab: Lab) -> None:
    n1 = lab.node("n1")
    conf_a = seed("n1", version=3, advert_int=0.1)
    second = vrrp_conf(name="VI_2", vrid=52, priority=100, version=3, advert_int=0.1,
                       vips=("10.1.1.101/24",))  # fmt: skip
    start(lab, n1, conf_a)
    wait_single_holder(lab, [n1], "n1", 5)
    wait_ready(lab, n1)
    conf_path = run_dir(lab, n1) / "keepalived.conf"
    conf_path.write_text(conf_a + second)
    (pid,) = [p for p in n1.pids()]
    import os

    os.kill(pid, signal.SIGHUP)
    lab.wait_until(lambda: state_of(lab, n1, "VI_2") == "MASTER", 3, what="VI_2 MASTER")
    first = instance(lab, n1, "VI_1")
    assert first["counters"]["transitions"] == 1  # untouched by the reload
    conf_path.write_text("vrrp_instance VI_1 {\n  virtual_router_id 300\n")  # broken
    os.kill(pid, signal.SIGHUP)
    lab.wait_until(lambda: "reload refused" in log_of(lab, n1), 3, what="reload refused")
    assert state_of(lab, n1, "VI_1") == "MASTER" and state_of(lab, n1, "VI_2") == "MASTER"


def test_status_cli_and_prometheus_metrics(lab: Lab) -> None:
    import json
    import subprocess
    import sys

    from .labkit import http_get

    n1, n2 = lab.node("n1"), lab.node("n2")
    start(lab, n1, seed("n1", version=3, advert_int=0.1), "--metrics", "127.0.0.1:9650")
    start(lab, n2, seed("n2", version=3, advert_int=0.1, auth_pass=None))
    wait_single_holder(lab, [n1, n2], "n1", 5)
    wait_state(lab, n2, "BACKUP")
    time.sleep(0.3)
    argv = [sys.executable, "-m", "hagate", "vrrp", "status", "--run-dir"]
    out = subprocess.run([*argv, str(run_dir(lab, n2)), "--json"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    snap = json.loads(out)
    (inst,) = snap["instances"]
    assert (inst["state"], inst["master"], inst["base_priority"]) == ("BACKUP", N1, 200)
    assert inst["counters"]["adverts_in"] >= 3
    text = subprocess.run([*argv, str(run_dir(lab, n1))], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "VI_1: MASTER" in text and "GARP/NA sent " in text
    metrics = http_get(n1, "http://127.0.0.1:9650/metrics")
    assert (
        'hagate_vrrp_state{instance_name="VI_1",vrid="51",interface="eth0",state="MASTER"} 1'
        in (metrics)
    )
    assert "hagate_vrrp_adverts_out_total" in metrics
