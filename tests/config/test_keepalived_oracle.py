"""keepalived 2.2.7's own `keepalived -t` as an oracle for the corpus.

keepalived -t needs the configured interfaces to exist, so it runs inside a private network
namespace with veth pairs named eth0..eth3 (no packets are sent; the namespace is removed
afterwards). Debian's 2.2.7 returns one more than its man page says: 5 for "errors but would
run" and 6 for script security; a missing parameter exits 2 and an unterminated quote
crashes it (SIGSEGV). hagate returns the documented 3/4/5, and 1 for its own checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.config.check import check

CORPUS = Path(__file__).parent / "corpus"
# keepalived 2.2.7 exit status -> hagate check exit status
KEEPALIVED_TO_HAGATE = {0: {0, 1}, 2: {3}, -11: {3}, 139: {3}, 5: {4}, 6: {5}}

pytestmark = [
    pytest.mark.keepalived,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("keepalived") or not shutil.which("ip"),
        reason="needs root, keepalived and iproute2",
    ),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"hgc-oracle-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", name)
    try:
        for a, b in (("eth0", "eth1"), ("eth2", "eth3")):
            _ip("-n", name, "link", "add", a, "type", "veth", "peer", "name", b)
            _ip("-n", name, "link", "set", a, "up")
            _ip("-n", name, "link", "set", b, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


# Where hagate disagrees on purpose (the reason is in the .expect/.conf).
NOT_ORACLE = {
    # keepalived reads the 1024th byte on as a new line: an unknown keyword, which is an
    # error for keepalived and a warning for hagate (which also flags the long line).
    "lex_long_line.conf",
}


def corpus_files() -> list[Path]:
    return sorted((p for p in CORPUS.rglob("*.conf") if p.name not in NOT_ORACLE), key=str)


@pytest.mark.parametrize(
    "conf", corpus_files(), ids=[str(p.relative_to(CORPUS)) for p in corpus_files()]
)
def test_exit_status_agrees_with_keepalived(netns: str, conf: Path) -> None:
    if conf.parent.name == "conf.d":
        pytest.skip("included fragment")
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, "keepalived", "-t", "-f", str(conf), "-l", "-n"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    ours = check([conf]).exit_code
    assert ours in KEEPALIVED_TO_HAGATE[proc.returncode], proc.stderr
