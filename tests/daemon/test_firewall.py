"""VipFirewall without a kernel: the nft transactions it sends (a fake nft records them)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path

import pytest

from hagate.daemon.firewall import VipFirewall


def test_tables_once_elements_by_difference_and_tables_gone_at_close(tmp_path: Path) -> None:
    log = tmp_path / "nft.log"
    fake = tmp_path / "nft"
    fake.write_text(f"#!/bin/sh\ncat >> {log}\necho --- >> {log}\n")
    fake.chmod(0o755)
    a, b, c = ip_address("10.0.0.1"), ip_address("10.0.0.2"), ip_address("fd00::1")

    async def go() -> VipFirewall:
        fw = VipFirewall(nft=str(fake))
        await fw.hold("VI_1", [a, b])
        await fw.hold("VI_2", [b, c])  # b already blocked: only c, and the ip6 table
        await fw.hold("VI_1", [])  # a goes; b stays for VI_2
        await fw.hold("VI_1", [])  # nothing to do: no nft run
        await fw.close()
        return fw

    fw = asyncio.run(go())
    runs = [r.strip().splitlines() for r in log.read_text().split("---\n") if r.strip()]
    assert len(runs) == 4 and fw.blocked == frozenset()
    assert runs[0][:3] == ["add table ip keepalived", "delete table ip keepalived",
                           "add table ip keepalived"]  # fmt: skip
    assert runs[0][-1] == "add element ip keepalived vips { 10.0.0.1, 10.0.0.2 }"
    assert not any("table ip keepalived" in line for line in runs[1])
    assert "add table ip6 keepalived" in runs[1]
    assert runs[1][-1] == "add element ip6 keepalived vips { fd00::1 }"
    assert runs[2] == ["delete element ip keepalived vips { 10.0.0.1 }"]
    assert sorted(runs[3]) == ["delete table ip keepalived", "delete table ip6 keepalived"]


def test_without_nft_nothing_is_blocked_and_it_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def go() -> VipFirewall:
        fw = VipFirewall(nft="/nonexistent/nft")
        await fw.hold("VI_1", [ip_address("10.0.0.1")])
        await fw.hold("VI_2", [ip_address("10.0.0.2")])
        return fw

    assert asyncio.run(go()).blocked == frozenset()
    said = [r for r in caplog.records if "is not blocked" in r.getMessage()]
    assert len(said) == 1
