"""`--max-fast-seconds` (what CI passes) fails a run whose fast-suite test takes longer than the limit."""

from __future__ import annotations

import pytest

SUITE = """
import time
import pytest

def test_quick():
    pass

def busy(seconds):  # CPU time (so wall time too), however loaded the machine is
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def test_sleepy():  # waits: wall time without CPU time
    time.sleep(0.3)

def test_busy():  # CPU time per torch thread above the limit
    import torch
    busy(0.3 * torch.get_num_threads())

@pytest.mark.slow
def test_marked_slow():
    busy(0.3)
"""


def test_a_test_over_the_limit_fails_the_run_and_is_named(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "fast_limit", "--max-fast-seconds", "0.2",
                                          "--max-fast-load", "1e9", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*TOO SLOW for the fast suite: test_suite.py::test_busy took * s wall, * s CPU*"])
    assert "test_marked_slow took" not in result.stdout.str()
    assert "test_sleepy took" not in result.stdout.str()  # waiting is not slowness the machine causes


def test_under_the_limit_or_without_it_the_run_passes(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=SUITE)
    assert pytester.runpytest_inprocess("-p", "fast_limit", "--max-fast-seconds", "5").ret == 0
    assert pytester.runpytest_inprocess().ret == 0


def test_on_a_loaded_machine_a_slow_test_is_reported_not_failed(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "fast_limit", "--max-fast-seconds", "0.2",
                                          "--max-fast-load", "-1", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*not judged (machine loaded*test_suite.py::test_busy took*"])
