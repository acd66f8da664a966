"""keepalived's monitoring contract, side by side with Debian's keepalived 2.2.7.

The same keepalived.conf runs on n1 under keepalived and on n2 under hagate (each alone:
the unicast peer does not exist, priority 255 makes both MASTER at once). SIGUSR1, SIGUSR2
and SIGJSON (`--signum=JSON`) go to both; the files they write are compared field by
field, and read the way keepalived-exporter reads them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hagate.lab import Lab, Node

from .labkit import log_of, poll, run_dir, start, wait_ready, wait_state

pytestmark = pytest.mark.lab

SIGJSON = int(signal.SIGRTMIN) + 2
NODES = {"n1": "10.1.1.5/24", "n2": "10.1.1.10/24"}


def conf(src: str) -> str:
    return f"""global_defs {{
    router_id lab
}}
vrrp_script chk_ok {{
    script "/bin/true"
    interval 1
    weight 0
}}
vrrp_instance VI_1 {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    advert_int 1
    unicast_src_ip {src}
    unicast_peer {{
        10.1.1.99
    }}
    authentication {{
        auth_type PASS
        auth_pass secret
    }}
    virtual_ipaddress {{
        10.1.1.100/24
        10.1.1.101/24 dev eth0 label eth0:vip
    }}
    virtual_ipaddress_excluded {{
        fd07::100/64
    }}
    track_script {{
        chk_ok
    }}
    notify /bin/true
}}
"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.create(prefix="hgtm", nodes=NODES) as lab:
        yield lab


def _keepalived(lab: Lab, node: Node, tmp: Path) -> int:
    d = lab.node_dir(node)
    (d / "keepalived.conf").write_text(conf("10.1.1.5"))
    pids = [str(d / f"k{s}.pid") for s in ("", "-vrrp", "-checkers")]
    argv = ["keepalived", "-n", "-l", "-D", "-f", str(d / "keepalived.conf")]
    argv += ["-p", pids[0], "-r", pids[1], "-c", pids[2]]
    with open(d / "keepalived.log", "ab") as log:
        node.spawn(argv, env={"TMPDIR": str(tmp)}, stdout=log, stderr=subprocess.STDOUT)
    assert poll(lambda: Path(pids[1]).exists() and Path(pids[1]).read_text().strip(), 10)
    return int(Path(pids[1]).read_text())


def _dump(pid: int, tmp: Path, signum: int, name: str) -> str:
    path = tmp / name
    path.unlink(missing_ok=True)
    os.kill(pid, signum)
    assert poll(path.exists, 5), f"{name} not written by pid {pid}"
    time.sleep(0.05)
    return path.read_text()


def _exporter_view(data: str) -> dict[str, dict[str, Any]]:
    """What keepalived-exporter's ParseVRRPData takes from keepalived.data (same rules)."""
    out: dict[str, dict[str, Any]] = {}
    inst: str | None = None
    key = ""
    for line in data.splitlines():
        if line.startswith(" VRRP Instance") and "=" in line:
            inst = line.split("=", 1)[1].strip()
            out[inst] = {"vips": [], "evips": []}
        elif line.startswith("   ") and inst is not None:
            if line.startswith("     "):
                val = line.strip()
            else:
                sep = "=" if "=" in line else ":" if ":" in line else None
                if sep is None:
                    continue
                k, _, val = line.strip().partition(sep)
                key, val = k.strip(), val.strip()
                if key == "Virtual IP":
                    continue
            if key.startswith("Virtual IP (") and val:
                out[inst]["vips"].append(val)
            if key.startswith("Virtual IP Excluded") and val:
                out[inst]["evips"].append(val)
            if key in ("State", "Wantstate", "Interface", "Virtual Router ID"):
                out[inst][key] = val
        elif line.startswith(" VRRP Version") or line.startswith(" VRRP Script"):
            continue
        else:
            inst = None
    return out


# values that differ between two daemons on two nodes (times, fds, own address), and the
# one known difference: an unset vrrp_script timeout is 0 in keepalived's dump, hagate
# prints the timeout in force (the interval)
_VOLATILE = re.compile(
    r"^   (Last transition|Read timeout|Master down timer|fd_in|Using src_ip|Timeout) "
    # A vrrp_script's run state: idle or running depends on when the signal lands.
    r"|^   State = (idle|running|requested termination|forcing termination)$"
)


def _block(data: str, header: str, name: str) -> list[str]:
    """The lines of one instance/script block of keepalived.data."""
    lines = data.splitlines()
    start_at = lines.index(f" {header} = {name}")
    block = [lines[start_at]]
    for line in lines[start_at + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def test_usr1_usr2_json_match_keepalived(lab: Lab, tmp_path: Path) -> None:
    n1, n2 = lab.node("n1"), lab.node("n2")
    ka_tmp, hg_tmp = tmp_path / "ka", tmp_path / "hg"
    ka_tmp.mkdir()
    hg_tmp.mkdir()
    ka_pid = _keepalived(lab, n1, ka_tmp)
    start(lab, n2, conf("10.1.1.10"), "--tmp-dir", str(hg_tmp))
    wait_ready(lab, n2)
    wait_state(lab, n2, "MASTER", 5)
    hg_pid = int((run_dir(lab, n2) / "vrrp.pid").read_text())
    assert poll(lambda: n1.has_address("10.1.1.100"), 5)
    time.sleep(1.5)  # both have sent an advert or two, the script has run

    ka, hg = _dump(ka_pid, ka_tmp, signal.SIGUSR2, "keepalived.stats"), None
    hg = _dump(hg_pid, hg_tmp, signal.SIGUSR2, "keepalived.stats")
    mask = re.compile(r"(Sent): \d+")
    assert mask.sub(r"\1: N", hg) == mask.sub(r"\1: N", ka)
    assert re.search(r"    Sent: [1-9]", hg)
    assert oct((hg_tmp / "keepalived.stats").stat().st_mode & 0o777) == "0o600"

    ka_json = json.loads(_dump(ka_pid, ka_tmp, SIGJSON, "keepalived.json"))
    hg_json = json.loads(_dump(hg_pid, hg_tmp, SIGJSON, "keepalived.json"))
    (ka_d, hg_d) = ka_json[0]["data"], hg_json[0]["data"]
    assert list(hg_d) == list(ka_d), json.dumps([ka_d, hg_d])
    assert list(hg_json[0]["stats"]) == list(ka_json[0]["stats"])
    differ = {k for k in ka_d if ka_d[k] != hg_d[k]}
    assert differ <= {"last_transition"}, {k: (ka_d[k], hg_d[k]) for k in differ}
    assert abs(hg_d["last_transition"] - time.time()) < 30

    ka_data = _dump(ka_pid, ka_tmp, signal.SIGUSR1, "keepalived.data")
    hg_data = _dump(hg_pid, hg_tmp, signal.SIGUSR1, "keepalived.data")
    assert _exporter_view(hg_data) == _exporter_view(ka_data)
    for header, name in (("VRRP Instance", "VI_1"), ("VRRP Script", "chk_ok")):
        ours = [x for x in _block(hg_data, header, name) if not _VOLATILE.match(x)]
        theirs = [x for x in _block(ka_data, header, name) if not _VOLATILE.match(x)]
        missing = [x for x in ours if x not in theirs]
        assert not missing, f"lines keepalived does not write: {missing}"
        assert [x for x in theirs if x in ours] == ours  # same order
        assert len(ours) >= len(theirs) - 2, set(theirs) - set(ours)
    # the Sockpool section, in keepalived's place (after the topology, before the scripts),
    # line for line but the fd, our own address and the receive buffer (keepalived: its
    # kernel_rx_buf_size, 0 by default; hagate asks for 4 MiB)
    pool = re.compile(r"^ fd_in \d+ fd_out = \d+$|^   Address = |^   Rx buf size = ")
    ours, theirs = _section(hg_data, "VRRP Sockpool"), _section(ka_data, "VRRP Sockpool")
    assert [x for x in ours if not pool.match(x)] == [x for x in theirs if not pool.match(x)]
    assert "   Address = 10.1.1.10" in ours and "   Rx buf size = 4194304" in ours
    heads = [x for x in hg_data.splitlines() if x.startswith("------<")]
    assert (
        heads.index("------< VRRP Sockpool >------")
        == heads.index("------< VRRP Topology >------") + 1
    )
    assert "wrote " in log_of(lab, n2)


def _section(data: str, name: str) -> list[str]:
    lines = data.splitlines()
    start_at = lines.index(f"------< {name} >------")
    out = []
    for line in lines[start_at + 1 :]:
        if line.startswith("------<"):
            break
        out.append(line)
    return out


def test_signum_prints_keepalived_numbers() -> None:
    for name in ("JSON", "DATA", "STATS", "RELOAD", "STOP"):
        ka = subprocess.run(["keepalived", f"--signum={name}"], capture_output=True, text=True)
        hg = subprocess.run(
            [sys.executable, "-m", "hagate", "vrrp", f"--signum={name}"],
            capture_output=True,
            text=True,
        )
        assert hg.stdout == ka.stdout and hg.returncode == 0, name
