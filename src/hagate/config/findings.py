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
    """Collects findings while parsing and checking."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(
        self,
        file: str,
        line: int,
        keyword: str,
        message: str,
        impact: Impact = Impact.WOULD_RUN,
    ) -> None:
        self.findings.append(Finding(Severity.ERROR, file, line, keyword, message, impact))

    def warning(self, file: str, line: int, keyword: str, message: str) -> None:
        self.findings.append(Finding(Severity.WARNING, file, line, keyword, message, Impact.OTHER))
