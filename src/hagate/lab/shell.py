"""Run a command, turning failure into a LabError that says what went wrong."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from hagate.lab.errors import LabError


def run(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` capturing text output; LabError if it is missing, fails or hangs."""
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:g} s: {' '.join(argv)}") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise LabError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {detail}")
    return done


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """`ip ARGS...` (iproute2)."""
    return run(["ip", *args])
