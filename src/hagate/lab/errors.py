"""The one exception every lab operation raises on failure."""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab operation failed: bad input, a missing tool, or a command that did not succeed."""
