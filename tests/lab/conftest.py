"""Lab tests skip cleanly when namespaces (root, ip netns, nft) or keepalived are missing."""

from __future__ import annotations

import shutil

import pytest

from hagate.lab import unavailable_reason


@pytest.fixture(autouse=True)
def _lab_requirements(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lab") is not None:
        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)
    wants_keepalived = request.node.get_closest_marker("keepalived") is not None
    if wants_keepalived and shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed")
