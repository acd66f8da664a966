"""The corpus: every config under corpus/ produces exactly the findings its .expect lists.

An .expect file has ``exit N``, one ``error|warning FILE:LINE KEYWORD TEXT`` per finding
(TEXT must occur in the message) and, for cluster directories, ``note TEXT`` lines.
Script files are not checked here (test_scripts.py does that with real files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hagate.config.check import CheckReport, check
from hagate.config.findings import Finding

CORPUS = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class Expected:
    exit_code: int
    findings: list[tuple[str, str, int, str, str]]
    notes: list[str]


def parse_expect(path: Path) -> Expected:
    exit_code = 0
    findings: list[tuple[str, str, int, str, str]] = []
    notes: list[str] = []
    for raw in path.read_text().splitlines():
        if not raw.strip():
            continue
        kind, _, rest = raw.partition(" ")
        if kind == "exit":
            exit_code = int(rest)
        elif kind == "note":
            notes.append(rest)
        else:
            where, keyword, text = rest.split(" ", 2)
            file, line = where.rsplit(":", 1)
            findings.append((kind, file, int(line), keyword, text))
    return Expected(exit_code, findings, notes)


def cases() -> list[tuple[str, list[Path], Path]]:
    out: list[tuple[str, list[Path], Path]] = []
    for expect in sorted(CORPUS.rglob("*.expect")):
        if expect.name == "cluster.expect":
            confs = sorted(expect.parent.glob("*.conf"))
        else:
            confs = [expect.with_suffix(".conf")]
        out.append((str(expect.relative_to(CORPUS)), confs, expect))
    return out


def matches(f: Finding, want: tuple[str, str, int, str, str]) -> bool:
    kind, file, line, keyword, text = want
    return (
        f.severity.value == kind
        and Path(f.file).name == file
        and f.line == line
        and f.keyword == keyword
        and text in f.message
    )


@pytest.mark.parametrize(("name", "confs", "expect"), cases(), ids=[c[0] for c in cases()])
def test_corpus(name: str, confs: list[Path], expect: Path) -> None:
    expected = parse_expect(expect)
    report: CheckReport = check(list(confs), check_files=False)
    unmatched = list(report.findings)
    missing = []
    for want in expected.findings:
        hit = next((f for f in unmatched if matches(f, want)), None)
        if hit is None:
            missing.append(want)
        else:
            unmatched.remove(hit)
    shown = "\n".join(str(f) for f in report.findings)
    assert not missing, f"expected but not found: {missing}\nall findings:\n{shown}"
    assert not unmatched, "unexpected findings:\n" + "\n".join(str(f) for f in unmatched)
    for note in expected.notes:
        assert any(note in n for n in report.notes), f"{note!r} not in {report.notes}"
    assert report.exit_code == expected.exit_code, shown


def test_every_finding_names_file_and_line() -> None:
    for _, confs, _ in cases():
        report = check(list(confs), check_files=False)
        for f in report.findings:
            assert f.file and (f.line > 0 or f.keyword == "file"), f
            assert str(f).startswith(f"{f.file}:{f.line}: {f.keyword}: ")
