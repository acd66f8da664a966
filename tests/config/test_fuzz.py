"""Whatever the text, loading and checking give findings, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hagate.config.check import check

WORDS = [
    "vrrp_instance", "vrrp_script", "vrrp_sync_group", "global_defs", "state", "MASTER",
    "priority", "255", "0", "-1", "advert_int", "0.5", "virtual_router_id", "51",
    "virtual_ipaddress", "10.0.0.1/24", "fe80::1", "dev", "brd", "scope", "label",
    "unicast_peer", "min_ttl", "authentication", "auth_type", "PASS", "AH", "auth_pass",
    "track_script", "weight", "nopreempt", "preempt_delay", "include", "*.conf", "group",
    "notify_master", "{", "}", '"', "'", "#", "!", "(seconds)", "\n", "\n", "\n", "x",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=80))
def test_random_configs_never_raise(words: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = Path(tmp) / "a.conf"
        b = Path(tmp) / "b.conf"
        a.write_text(" ".join(words))
        b.write_text(" ".join(reversed(words)))
        report = check([a, b], check_files=True)
        for finding in report.findings:
            assert finding.file
            str(finding)
