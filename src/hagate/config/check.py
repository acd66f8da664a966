"""What `hagate check` computes: each node's findings, the cluster's, and the exit code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hagate.config.cluster import check_cluster
from hagate.config.findings import Finding, exit_code
from hagate.config.lint import lint
from hagate.config.load import LoadResult, load, sort_findings


@dataclass(frozen=True, slots=True)
class CheckReport:
    results: tuple[LoadResult, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return exit_code(list(self.findings))


def check(paths: list[str | Path], check_files: bool = True) -> CheckReport:
    """Loads and lints every file; with two or more readable files, checks the cluster."""
    results = [load(path) for path in paths]
    findings: list[Finding] = []
    for result in results:
        findings += result.findings
        if result.config.files:
            findings += sort_findings(lint(result.config, check_files=check_files))
    notes: list[str] = []
    readable = [r.config for r in results if r.config.files]
    if len(readable) > 1:
        cluster = check_cluster(readable)
        findings += cluster.findings
        notes = cluster.notes
    return CheckReport(tuple(results), tuple(findings), tuple(notes))
