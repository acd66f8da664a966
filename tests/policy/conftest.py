"""Shared helpers: a policy file written to tmp_path, fast argon2 hashes, a CA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import argon2
import pytest

from hagate.pki.ca import init_ca
from hagate.policy import Policy, load_policy

# Cheap parameters so that tests verify in microseconds; the gateway verifies with whatever
# parameters the hash carries.
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
BOB_HASH = FAST.hash("bob-secret")
DAVE_HASH = FAST.hash("dave-secret")

POLICY = f"""\
realm = "hagate"

[groups]
ops = ["user:alice", "password:bob", "token:carol"]
guests = []

[passwords]
bob = "{BOB_HASH}"
dave = "{DAVE_HASH}"

[[rule]]
name = "ops-everything"
who = ["group:ops"]
devices = ["*"]
services = ["*"]
routes = ["http", "https", "connect"]

[[rule]]
name = "lobby-web"
devices = ["kiosk-*"]
services = ["http"]
routes = ["https", "http"]
public = true
from = ["192.0.2.0/24"]

[[rule]]
name = "dave-cameras"
who = ["password:dave", "group:guests"]
devices = ["cam-?"]
services = ["http"]
routes = ["https"]

[[rule]]
name = "gw-monitor"
who = ["device:monitor"]
devices = ["dev*"]
services = ["metrics"]
routes = ["connect"]

[[rule]]
name = "open-telnet"
devices = ["dev1"]
services = ["telnet"]
routes = ["tcp"]
public = true
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def _write(text: str, name: str = "policy.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_ca(directory)
    return directory


@pytest.fixture
def policy(write: Callable[[str], Path], pki: Path) -> Policy:
    return load_policy(write(POLICY), ca_cert=pki / "ca.crt")
