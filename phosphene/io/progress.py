"""Progress of long work: a tqdm bar on a terminal or in Jupyter, plain lines on stderr without one.

Every long loop in phosphene goes through :func:`progress_bar`. ``progress`` is the same switch
everywhere: ``None`` (the default) shows a bar on a terminal or in a Jupyter kernel and, when stderr
is a pipe or a log file, a plain line when a stage starts, about every 10 % (or every 30 s, whichever
comes first) and when it ends; ``True`` does the same; ``False`` (the CLI's ``--quiet``) shows
nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm.auto import tqdm

LINE_EVERY_FRACTION = 0.10
LINE_EVERY_SECONDS = 30.0


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``tqdm.auto`` draws its bars as widgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def interactive() -> bool:
    """True where a live bar can be drawn: stderr is a terminal, or a Jupyter kernel."""
    return sys.stderr.isatty() or in_notebook()


def progress_enabled(progress: bool | None) -> bool:
    """Whether a live *bar* is drawn: when asked, or by default on a terminal or in Jupyter."""
    return interactive() if progress is None else progress


def progress_mode(progress: bool | None) -> str:
    """``"bar"`` (terminal or Jupyter), ``"lines"`` (stderr is not a terminal) or ``"off"`` (quiet)."""
    if progress is False:
        return "off"
    return "bar" if interactive() else "lines"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class LineProgress:
    """The part of tqdm's interface phosphene uses, writing plain lines instead of redrawing a bar.

    A line when the stage starts, when about 10 % more is done or 30 s have passed since the last
    line, and when it ends (with the elapsed time). Silent when ``enabled`` is False.
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, enabled: bool = True, file: TextIO | None = None,
                 every_fraction: float = LINE_EVERY_FRACTION, every_seconds: float = LINE_EVERY_SECONDS):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self._initial = initial
        self.enabled, self.file = enabled, file
        self.every_fraction, self.every_seconds = every_fraction, every_seconds
        self._started = time.monotonic()
        self._last_time, self._last_n = self._started, initial
        self._closed = False
        if enabled:
            done = f", {initial} already done" if initial else ""
            size = f"{total} {unit}" if total is not None else f"{unit}s as they come"
            self._write(f"started: {size}{done}")

    def _write(self, text: str) -> None:
        stream = self.file if self.file is not None else sys.stderr
        prefix = f"[{self.desc}] " if self.desc else ""
        print(prefix + text, file=stream, flush=True)

    def _count(self) -> str:
        if self.total:
            return f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)"
        return f"{self.n} {self.unit}"

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; write a line when 10 % more is done or 30 s have passed."""
        self.n += n
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        step = max(1, int(self.total * self.every_fraction)) if self.total else None
        due = ((step is not None and self.n - self._last_n >= step)
               or now - self._last_time >= self.every_seconds)
        if due and (self.total is None or self.n < self.total):
            elapsed = now - self._started
            rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
            left = (f", about {_duration((self.total - self.n) / rate)} left"
                    if self.total and rate > 0 else "")
            self._write(f"{self._count()}, {_duration(elapsed)}{left}")
            self._last_time, self._last_n = now, self.n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for compatibility with tqdm; plain lines carry no postfix."""

    def close(self) -> None:
        """Write the closing line (once)."""
        if self.enabled and not self._closed:
            self._write(f"done: {self._count()} in {_duration(time.monotonic() - self._started)}")
        self._closed = True

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("LineProgress without an iterable cannot be iterated")
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()  # only when the loop ran to its end: a failed stage says nothing of "done"

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        self._closed = True


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, leave: bool = True,
                 progress: bool | None = None) -> Any:
    """A tqdm bar, plain progress lines, or nothing, following ``progress`` (see the module doc).

    Use it like tqdm: iterate over it, or call ``update(n)`` and ``close()`` (or use it in ``with``).
    """
    mode = progress_mode(progress)
    if mode == "bar":
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, enabled=mode == "lines")


def stage_line(text: str, progress: bool | None = None) -> None:
    """One line on stderr for a stage of a long job, unless ``progress`` is False (``--quiet``)."""
    if progress_mode(progress) != "off":
        tqdm.write(text, file=sys.stderr) if interactive() else print(text, file=sys.stderr, flush=True)
