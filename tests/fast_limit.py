"""pytest plugin: ``--max-fast-seconds S`` fails a run in which a test without the ``slow`` marker
took more than S seconds (its call phase), naming each one. CI passes 10 (docs/testing.md)."""

from __future__ import annotations

import pytest


class FastLimit:
    def __init__(self, limit: float):
        self.limit = limit
        self.slow: set[str] = set()
        self.too_slow: list[tuple[str, float]] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.slow = {item.nodeid for item in items if item.get_closest_marker("slow")}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.duration > self.limit and report.nodeid not in self.slow:
            self.too_slow.append((report.nodeid, report.duration))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.too_slow and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for nodeid, seconds in self.too_slow:
            terminalreporter.write_line(
                f"TOO SLOW for the fast suite: {nodeid} took {seconds:.1f} s (limit {self.limit:g} s); "
                "make it faster or add it to SLOW in tests/conftest.py", red=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--max-fast-seconds", type=float, default=None, metavar="S",
                     help="fail the run if a test outside the SLOW list takes more than S seconds "
                          "(its call phase); CI uses 10")


def pytest_configure(config: pytest.Config) -> None:
    limit = config.getoption("--max-fast-seconds")
    if limit is not None:
        config.pluginmanager.register(FastLimit(limit), "fast-limit")
