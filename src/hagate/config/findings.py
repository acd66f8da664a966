"""Diagnostics: one :class:`Finding` per problem, each naming file, line and keyword."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


class Impact(IntEnum):
    """What an error means for running, as the `hagate check` exit code.

    The values are keepalived's documented ``-t`` exit codes (keepalived(8), "Exit status");
    hagate-only checks (cluster consistency, script files) use 1.
    """

    CANNOT_RUN = 3  # keepalived would not start with this configuration
    WOULD_RUN = 4  # errors, but keepalived runs after ignoring/repairing the bad part
    SCRIPT_SECURITY = 5  # scripts configured but enable_script_security not set
    OTHER = 1  # hagate's own checks: cluster, script files


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding of a config check: where, which keyword, how severe, and what."""

    severity: Severity
    file: str
    line: int
    keyword: str
    message: str
    impact: Impact = Impact.WOULD_RUN

    def __str__(self) -> str:
        tag = "" if self.severity is Severity.ERROR else "warning: "
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.keyword}: {tag}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "file": self.file,
            "line": self.line,
            "keyword": self.keyword,
            "message": self.message,
            "exit_code": int(self.impact) if self.severity is Severity.ERROR else 0,
        }


def exit_code(findings: list[Finding]) -> int:
    """keepalived -t's exit code for these findings (0 when there are warnings only).

    Precedence: cannot run (3) > script security (5) > would run (4) > hagate checks (1).
    keepalived keeps one status and its script-security check runs last, so it wins over
    ordinary errors.
    """
    impacts = {f.impact for f in findings if f.severity is Severity.ERROR}
    for impact in (Impact.CANNOT_RUN, Impact.SCRIPT_SECURITY, Impact.WOULD_RUN, Impact.OTHER):
        if impact in impacts:
            return int(impact)
    return 0


class Reporter:
    """Collects findings while parsing and checking.

    At most ``limit`` are kept (a garbage file can make one per byte); the others are only
    counted, with the strongest exit code among them, for :meth:`summary`.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.findings: list[Finding] = []
        self.limit = limit
        self.dropped = 0
        self._dropped_impacts: set[Impact] = set()
        self._last: Finding | None = None

    def _add(self, finding: Finding) -> None:
        if len(self.findings) < self.limit:
            self.findings.append(finding)
            self._last = finding
            return
        self.dropped += 1
        if finding.severity is Severity.ERROR:
            self._dropped_impacts.add(finding.impact)

    def error(
        self,
        file: str,
        line: int,
        keyword: str,
        message: str,
        impact: Impact = Impact.WOULD_RUN,
    ) -> None:
        self._add(Finding(Severity.ERROR, file, line, keyword, message, impact))

    def warning(self, file: str, line: int, keyword: str, message: str) -> None:
        self._add(Finding(Severity.WARNING, file, line, keyword, message, Impact.OTHER))

    def summary(self) -> Finding | None:
        """One finding standing for the dropped ones (None if none were dropped)."""
        if not self.dropped or self._last is None:
            return None
        message = f"{self.dropped} more finding(s) not shown (at most {self.limit} are kept)"
        code = exit_code([Finding(Severity.ERROR, "", 0, "", "", i) for i in self._dropped_impacts])
        if not code:
            return Finding(Severity.WARNING, self._last.file, self._last.line, "file", message)
        return Finding(
            Severity.ERROR, self._last.file, self._last.line, "file", message, Impact(code)
        )
