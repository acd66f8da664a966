"""`hagate lab demo --nodes 3` end to end (namespaces): every step as it describes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hagate.lab.multidemo import run_multi_demo

pytestmark = pytest.mark.lab


def test_multi_node_demo(tmp_path: Path) -> None:
    out = io.StringIO()
    rc = run_multi_demo(3, tmp_path / "out", advert_int=0.1, stream=out)
    text = out.getvalue()
    assert rc == 0, text
    for line in (
        "every user reaches every device",
        "etcd: n1 uses https://10.1.1.2",
        "n2 holds 10.1.1.101 (VRRP)",
        "first user request OK via 10.1.1.101",
        "served again via n3",
        "every node says etcd is down in /healthz",
        "every node caught up with etcd",
    ):
        assert line in text, text
    assert "hop" in text and "dir" in text
    data = json.loads((tmp_path / "out" / "multi-timeline.json").read_text())
    assert len(data["requests"]) == 9
    assert (tmp_path / "out" / "multi-logs" / "n2-gateway.log").exists()
