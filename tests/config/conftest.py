"""Shows the conformance table (filled by test_config_conformance.py) in the normal pytest summary."""

from __future__ import annotations

import pytest

# Lines of the conformance table, appended by the corpus test when it runs.
CONFORMANCE_REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CONFORMANCE_REPORT:
        terminalreporter.write_sep("=", "bodywork config conformance")
        for line in CONFORMANCE_REPORT:
            terminalreporter.write_line(line)
