"""pytest plugin: ``--max-fast-seconds S`` fails a run in which a test without the ``slow`` marker
took more than S seconds (its call phase), naming each one. CI passes 10 (docs/testing.md).

A test is too slow when both its wall time and its CPU time (this process's and its waited-for
children's) divided by torch's thread count exceed S: other jobs on the machine stretch the wall
time but not the CPU time, a test that waits (a server, a subprocess it does not wait for) spends
wall time without CPU time, and CPU time over the threads is about the wall time the test takes on
an idle machine. On a shared virtual machine other jobs inflate even CPU time (steal), so a test
over the limit is only reported, not failed, while the load average is above ``--max-fast-load``
(default 1.5 x the cores): the check judges on a machine quiet enough to judge."""

from __future__ import annotations

import os
import resource
import time

import pytest


class FastLimit:
    def __init__(self, limit: float, max_load: float):
        self.limit, self.max_load = limit, max_load
        self.unjudged: list[tuple[str, float, float]] = []
        self.slow: set[str] = set()
        self.too_slow: list[tuple[str, float, float]] = []
        self.cpu: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.slow = {item.nodeid for item in items if item.get_closest_marker("slow")}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        started = _cpu_seconds()
        yield
        self.cpu[item.nodeid] = _cpu_seconds() - started

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or report.nodeid in self.slow or report.duration <= self.limit:
            return
        cpu = self.cpu.get(report.nodeid, report.duration)  # under xdist: measured on the worker
        if cpu / _threads() <= self.limit:
            return
        load = os.getloadavg()[0]
        if load > self.max_load:  # other jobs: on a shared VM they inflate even CPU time
            self.unjudged.append((report.nodeid, report.duration, load))
        else:
            self.too_slow.append((report.nodeid, report.duration, cpu))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.too_slow and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for nodeid, wall, load in self.unjudged:
            terminalreporter.write_line(
                f"not judged (machine loaded, load average {load:.1f} > {self.max_load:g}): {nodeid} took "
                f"{wall:.1f} s wall")
        for nodeid, wall, cpu in self.too_slow:
            terminalreporter.write_line(
                f"TOO SLOW for the fast suite: {nodeid} took {wall:.1f} s wall, {cpu:.1f} s CPU "
                f"(limit {self.limit:g} s); make it faster or add it to SLOW in tests/conftest.py", red=True)


def _threads() -> int:
    try:
        import torch
    except ImportError:
        return 1
    return max(1, torch.get_num_threads())


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--max-fast-seconds", type=float, default=None, metavar="S",
                     help="fail the run if a test outside the SLOW list takes more than S seconds "
                          "(its call phase); CI uses 10")
    parser.addoption("--max-fast-load", type=float, default=None, metavar="L",
                     help="judge --max-fast-seconds only while the 1-minute load average is at most L "
                          "(default: 1.5 x the cores)")


def pytest_configure(config: pytest.Config) -> None:
    limit = config.getoption("--max-fast-seconds")
    if limit is not None:
        max_load = config.getoption("--max-fast-load")
        cores = os.cpu_count() or 1
        config.pluginmanager.register(FastLimit(limit, cores * 1.5 if max_load is None else max_load),
                                      "fast-limit")
