"""The console's lab test skips cleanly without namespaces (as tests/lab's do); what the
console tests record (``record_property``: the browser test's screenshot, measured figures) is
listed at the end of the run, so that a person finds the picture without ``-s``."""

from __future__ import annotations

import pytest

from hagate.lab import unavailable_reason


@pytest.fixture(autouse=True)
def _lab_requirements(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lab") is not None:
        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = [
        (report.nodeid.rsplit("::", 1)[-1], key, value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if isinstance(report, pytest.TestReport) and report.when == "call"
        if report.nodeid.startswith("tests/console/")
        for key, value in report.user_properties
    ]
    if found:
        terminalreporter.section("console: screenshots and figures")
        for test, key, value in found:
            terminalreporter.write_line(f"{test}: {key} = {value}")
