"""Issue 16, configuration half: loading is bounded, never blocks, and lexes as keepalived.

Timings are printed (``pytest -s``), asserted only loosely: this machine is shared.
"""

from __future__ import annotations

import contextlib
import os
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from hagate.config import Impact, Severity, load
from hagate.config.check import check
from hagate.config.limits import Limits
from hagate.daemon.plan import BridgeError, disabled_scripts, plan_instance

CORPUS = Path(__file__).parent / "corpus"
INSTANCE = """vrrp_instance VI_{n} {{
    state BACKUP   # comment
    interface eth0
    virtual_router_id {v}
    priority 100
    authentication {{
        auth_type PASS
        auth_pass secret
    }}
    virtual_ipaddress {{
        10.{a}.{b}.1/24 dev eth0
    }}
}}
"""


def timed(path: Path, **kw: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = load(path, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - start, result


def test_fifo_include_and_main_never_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.conf"
    os.mkfifo(fifo)
    main = tmp_path / "main.conf"
    main.write_text("include pipe.conf\n")
    elapsed, _ = timed(main)
    _, findings = load(main)
    (f,) = [f for f in findings if f.keyword == "include"]
    assert (f.line, "a FIFO" in f.message) == (1, True), f
    assert elapsed < 5
    _config, findings = load(fifo)
    assert findings[0].keyword == "file" and findings[0].impact is Impact.CANNOT_RUN


def test_executable_main_file_is_refused(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text("global_defs {\n}\n")
    main.chmod(0o755)
    _, findings = load(main)
    assert findings[0].impact is Impact.CANNOT_RUN and "executable" in findings[0].message


def test_sizes_and_file_count_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "big.conf").write_text("# x\n" * 500)
    (tmp_path / "main.conf").write_text("include big.conf\n")
    _, findings = load(tmp_path / "main.conf", limits=Limits(max_file_bytes=1000))
    assert any("over the 1000 byte limit" in f.message and f.line == 1 for f in findings)
    for i in range(5):
        (tmp_path / "d" / f"{i}.conf").parent.mkdir(exist_ok=True)
        (tmp_path / "d" / f"{i}.conf").write_text("# x\n" * 100)
    (tmp_path / "main.conf").write_text("include d/*.conf\n")
    _, findings = load(tmp_path / "main.conf", limits=Limits(max_total_bytes=1500))
    assert any("all files together" in f.message for f in findings)
    _, findings = load(tmp_path / "main.conf", limits=Limits(max_glob_matches=3))
    assert any("matches more than 3 files" in f.message for f in findings)


def test_include_fan_out_reads_each_file_once(tmp_path: Path) -> None:
    # 7 files that each include *.conf: factorial in a naive reader
    (tmp_path / "main.conf").write_text("include d/*.conf\n")
    (tmp_path / "d").mkdir()
    for i in range(7):
        (tmp_path / "d" / f"{i}.conf").write_text(f"include *.conf\n# file {i}\n")
    elapsed, _result = timed(tmp_path / "main.conf")
    config, findings = load(tmp_path / "main.conf")
    print(f"\n7-file include fan-out: {elapsed * 1000:.0f} ms, {len(config.files)} files read")
    assert len(config.files) == 8
    assert all(f.keyword == "include" for f in findings if f.severity is Severity.ERROR)
    assert elapsed < 5


def test_glob_brace_and_nul_pattern(tmp_path: Path) -> None:
    for name in ("a.conf", "b.conf", "c.conf"):
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "main.conf").write_text("include {a,b}.conf\n")
    config, _ = load(tmp_path / "main.conf")
    assert [p.name for p in config.files] == ["main.conf", "a.conf", "b.conf"]


def test_million_nested_braces_and_pairs_are_quick(tmp_path: Path) -> None:
    for name, text in (("nested", "{" * 1_000_000), ("blocks", "a {\n" * 300_000)):
        path = tmp_path / f"{name}.conf"
        path.write_text(text)
        elapsed, _result = timed(path)
        _, findings = load(path)
        print(f"\n{name} ({len(text)} bytes): {elapsed:.2f} s, {len(findings)} findings")
        assert any(f.impact is Impact.CANNOT_RUN and "nested over" in f.message for f in findings)
        assert len(findings) <= 1001
        assert elapsed < 30


def test_ten_megabytes_load_time(tmp_path: Path) -> None:
    parts = []
    size = 0
    n = 0
    while size < 10 * 1024 * 1024:
        text = INSTANCE.format(n=n, v=n % 255 + 1, a=(n // 256) % 256, b=n % 256)
        parts.append(text)
        size += len(text)
        n += 1
    path = tmp_path / "big.conf"
    path.write_text("".join(parts))
    elapsed, _result = timed(path)
    config, findings = load(path)
    print(f"\n10 MB, {n} instances: loaded in {elapsed:.2f} s (keepalived 2.2.7: 0.4-1.5 s)")
    assert len(config.vrrp_instances) == n and not findings
    assert elapsed < 30


def test_lexing_matches_keepalived_in_the_model() -> None:
    (inst,) = load(CORPUS / "lex_comment_in_word.conf").config.vrrp_instances
    assert (inst.virtual_router_id, inst.priority) == (51, 150)
    (inst,) = load(CORPUS / "lex_vt_nopreempt.conf").config.vrrp_instances
    assert (inst.priority, inst.nopreempt) == (100, False)
    (inst,) = load(CORPUS / "lex_blanks_and_separators.conf").config.vrrp_instances
    assert inst.priority == 120
    (inst,) = load(CORPUS / "lex_nul_auth_pass.conf").config.vrrp_instances
    assert inst.auth_pass == "ab"


def test_host_id_lines_and_definitions(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text(
        "@node1 global_defs {\n router_id N1\n}\n@^node1 global_defs {\n router_id OTHER\n}\n"
    )
    assert load(path, host_id="node1").config.global_defs.router_id == "N1"
    assert load(path, host_id="node2").config.global_defs.router_id == "OTHER"
    path.write_text("$PRIO=150\n")
    (f,) = [f for f in load(path).findings if f.keyword == "$PRIO"]
    assert f.impact is Impact.CANNOT_RUN and "not supported" in f.message


@pytest.mark.parametrize(
    ("name", "advertised", "excluded", "peers"),
    [("vips_300", 255, 45, 0), ("vips6_100", 89, 11, 0), ("peer_family", 1, 0, 1)],
)
def test_what_check_accepts_the_daemon_plans(
    name: str, advertised: int, excluded: int, peers: int
) -> None:
    config, findings = load(CORPUS / f"{name}.conf")
    assert not any(f.impact is Impact.CANNOT_RUN for f in findings)
    (inst,) = config.vrrp_instances
    assert len(inst.virtual_ipaddresses) == advertised
    assert len(inst.virtual_ipaddresses_excluded) == excluded
    assert len(inst.unicast_peers) == peers
    addresses = [IPv4Address("10.0.0.2"), IPv6Address("fe80::2")]
    plan = plan_instance(config, inst, addresses, disabled_scripts(config))
    assert len(plan.params.vips) == advertised


def test_script_path_component_over_255_bytes() -> None:
    report = check([CORPUS / "script_long_name.conf"], check_files=True)
    assert any("over 255 bytes" in f.message for f in report.findings)
    config = report.results[0].config
    with contextlib.suppress(BridgeError):
        plan_instance(config, config.vrrp_instances[0], [IPv4Address("10.0.0.2")])
