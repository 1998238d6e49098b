"""Progress without a terminal: plain lines on stderr per stage and about every 10 %, none with --quiet."""

from __future__ import annotations

import io
import sys

from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.io.progress import LineProgress, progress_bar, progress_mode, stage_line


def test_modes_follow_the_terminal_and_the_quiet_switch(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_mode(None) == "lines" and progress_mode(True) == "lines" and progress_mode(False) == "off"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress_mode(None) == "bar" and progress_mode(False) == "off"


def test_lines_at_start_every_tenth_and_at_the_end():
    stream = io.StringIO()
    with LineProgress(total=100, desc="visualize", unit="unit", file=stream, every_seconds=1e9) as bar:
        for _ in range(100):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[visualize] started: 100 unit"
    assert lines[-1].startswith("[visualize] done: 100/100 unit (100 %) in ")
    middle = lines[1:-1]
    assert len(middle) == 9 and middle[0].startswith("[visualize] 10/100 unit (10 %)")
    assert all("left" in line for line in middle)


def test_lines_every_thirty_seconds_when_work_is_slow(monkeypatch):
    clock = iter(range(0, 10_000, 31))
    monkeypatch.setattr("phosphene.io.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()
    bar = LineProgress(total=1000, desc="mining", unit="batch", file=stream)
    for _ in range(3):
        bar.update()  # 0.3 % each, but 31 s apart
    bar.close()
    assert len(stream.getvalue().splitlines()) == 5  # start, three timed lines, done


def test_iterating_counts_and_unknown_totals_work():
    stream = io.StringIO()
    items = list(LineProgress(iter(range(7)), desc="embed", unit="batch", file=stream))
    assert items == list(range(7))
    assert stream.getvalue().splitlines()[-1].startswith("[embed] done: 7 batch in ")


def test_quiet_writes_nothing(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress_bar(range(3), desc="render", progress=False)
    assert list(bar) == [0, 1, 2]
    stage_line("report: pages", progress=False)
    assert sys.stderr.getvalue() == ""
    stage_line("report: pages", progress=None)
    assert sys.stderr.getvalue() == "report: pages\n"


def test_render_without_a_terminal_prints_progress_lines_and_quiet_silences_them(tmp_path):
    args = ["render", "--layer", "_blocks.2", "--channels", "0", "--steps", "4", "--size", "32"]
    loud = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "[render] started: 4 step" in loud.stderr and "[render] done: 4/4 step" in loud.stderr
    quiet = CliRunner().invoke(main, [*args, "--quiet", "--out", str(tmp_path / "b")])
    assert quiet.exit_code == 0, quiet.output
    assert "[render]" not in quiet.stderr


def test_a_stage_that_fails_does_not_say_done():
    stream = io.StringIO()
    bar = LineProgress(range(5), desc="render", unit="step", file=stream)
    try:
        for step in bar:
            if step == 2:
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    try:
        with LineProgress(total=3, desc="mining", file=stream) as second:
            second.update()
            raise ValueError("bad batch")
    except ValueError:
        pass
    assert "done" not in stream.getvalue() and stream.getvalue().count("started") == 2
