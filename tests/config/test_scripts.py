"""Script checks with real files: missing, not executable, unsafe under script security."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hagate.config.check import check

TEMPLATE = """
global_defs {{
{security}
    script_user root
}}
vrrp_script chk {{
    script "{script} --flag"
}}
vrrp_instance A {{
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {{ 10.0.0.1 }}
    track_script {{
        chk
    }}
    notify_master {notify}
}}
"""


def config(tmp_path: Path, script: Path, security: bool, notify: str = "/bin/true") -> Path:
    path = tmp_path / "k.conf"
    text = TEMPLATE.format(
        security="    enable_script_security" if security else "",
        script=script,
        notify=notify,
    )
    path.write_text(text)
    return path


def make_script(directory: Path, mode: int = 0o755) -> Path:
    directory.mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    script = directory / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, mode)
    return script


def messages(path: Path) -> tuple[int, list[str]]:
    report = check([path])
    return report.exit_code, [f"{f.keyword}: {f.message}" for f in report.findings]


def test_missing_script_is_disabled(tmp_path: Path) -> None:
    code, found = messages(config(tmp_path, tmp_path / "nope.sh", security=True))
    assert code == 4
    assert found == [
        f"script: {tmp_path / 'nope.sh'!s}: no such file (keepalived disables the script)"
    ]


def test_not_executable(tmp_path: Path) -> None:
    script = make_script(tmp_path / "bin", mode=0o644)
    code, found = messages(config(tmp_path, script, security=True))
    assert code == 4 and "not an executable file" in found[0]


def test_scripts_without_security_exit_5(tmp_path: Path) -> None:
    script = make_script(tmp_path / "bin")
    code, found = messages(config(tmp_path, script, security=False))
    assert code == 5
    assert found == [
        "script: scripts are configured but global_defs has no enable_script_security: "
        "keepalived runs them as root unchecked (keepalived -t exits 5)"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root-owned files")
def test_security_refuses_writable_by_non_root(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    for parent in tmp_path.parents:
        if parent.stat().st_mode & 0o002 and not parent.stat().st_mode & 0o1000:
            pytest.skip(f"{parent} is world-writable without sticky bit")
    safe = make_script(tmp_path / "safe")
    code, found = messages(config(tmp_path, safe, security=True))
    assert (code, found) == (0, [])
    unsafe = make_script(tmp_path / "unsafe", mode=0o777)
    code, found = messages(config(tmp_path, unsafe, security=True))
    assert code == 4
    assert "writable by a non-root user" in found[0] and "refuses" in found[0]
    shared = make_script(tmp_path / "shared")
    os.chmod(tmp_path / "shared", 0o777)
    code, found = messages(config(tmp_path, shared, security=True))
    assert f"{tmp_path / 'shared'} is writable" in found[0]
