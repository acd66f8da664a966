"""Property: any bytes, as a config file or as an included file, give findings or a model,
never a traceback, within 2 s and 200 MB; both for `hagate check` and for the daemon's
loading path (hagate.daemon.driver.load_config, then plan_instance for every instance)."""

from __future__ import annotations

import contextlib
import tempfile
import time
import tracemalloc
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.config.check import check
from hagate.daemon.driver import StartError, load_config
from hagate.daemon.plan import BridgeError, disabled_scripts, plan_instance

PIECES = [
    b"vrrp_instance VI ", b"{", b"}", b"\n", b"\n", b" ", b"\t", b"\v", b"\f", b"\r", b"\0",
    b"\x1c", b"\xc2\x85", b"\xe2\x80\xa8", b"\xff", b"#", b"!", b'"', b"'", b"\\", b"@",
    b"@^", b"$X=1", b"~SEQ(i,1,3)", b"include ", b"includer ", b"*.conf", b"{a,b}",
    b"/dev/zero", b"b.conf", b"interface eth0\n", b"virtual_router_id 51", b"priority 150",
    b"state MASTER\n", b"nopreempt\n", b"virtual_ipaddress {\n10.0.0.1/24\n}\n",
    b"fd00::1\n", b"unicast_peer {\n", b"fe80::1\n", b"10.0.0.2\n", b"unicast_src_ip ",
    b"authentication {\nauth_type PASS\nauth_pass ", b"vrrp_script chk {\nscript ",
    b"track_script {\nchk\n}\n", b"notify_master ", b"/bin/true", b"a" * 300, b"x" * 1100,
    b"advert_int 0.5\n", b"version 3\n", b"global_defs {\n", b"vrrp_sync_group G {\n",
    b"group {\nVI\n}\n",
]  # fmt: skip

CONFIGS = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from(PIECES), max_size=120).map(b"".join),
)


def _daemon_load(path: Path) -> None:
    try:
        config = load_config(path)
    except StartError:
        return  # refused with a message: a finding
    disabled = disabled_scripts(config)
    addresses = [IPv4Address("10.0.0.9"), IPv6Address("fe80::9")]
    for inst in config.vrrp_instances:
        with contextlib.suppress(BridgeError):
            plan_instance(config, inst, addresses, disabled)


@settings(max_examples=150, deadline=None)
@given(CONFIGS, CONFIGS)
def test_any_bytes_load_cleanly(main: bytes, included: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = Path(tmp) / "a.conf"
        b = Path(tmp) / "b.conf"
        a.write_bytes(main + b"\ninclude b.conf\n")
        b.write_bytes(included)
        tracemalloc.start()
        start = time.perf_counter()
        try:
            report = check([a, b], check_files=True)
            for finding in report.findings:
                assert finding.file
                str(finding)
                assert finding.line <= max(main.count(b"\n"), included.count(b"\n")) + 2
            _daemon_load(a)
            _daemon_load(b)
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 200 * 1024 * 1024
