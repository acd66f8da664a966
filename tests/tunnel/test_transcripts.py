"""Every transcript in transcripts/ replays to exactly its expected events, bytes and states."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from .transcript import HERE, parse, render, replay

TRANSCRIPTS = sorted(HERE.glob("*.txt"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path: Path) -> None:
    t = parse(path.read_text())
    assert t.subject, f"{path.name}: no conn/registry line"
    assert t.steps and all(s.expected for s in t.steps), f"{path.name}: steps without outputs"
    expected = render(t, t.steps)
    actual = render(t, replay(t))
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm=""
        )
        pytest.fail(f"{path.name} differs:\n" + "\n".join(diff))


def test_there_are_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 20


def test_a_wrong_expectation_is_reported() -> None:
    text = 'conn role=gateway\nat 0 recv {"op":"probe"}\n  = ESTABLISHED timer none\n'
    t = parse(text)
    assert render(t, replay(t)) != render(t, t.steps)
