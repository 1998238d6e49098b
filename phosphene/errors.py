"""Errors phosphene raises for bad input. The CLI turns each into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PhospheneError(ValueError):
    """Base class of the errors caused by what the user asked for (not by a bug)."""


class LayerNotFoundError(PhospheneError, KeyError):
    """A layer name that the model does not have."""

    def __init__(self, name: str, known: Iterable[str]):
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        if not close:  # fall back to names sharing the prefix typed so far
            stem = name.rsplit(".", 1)[0]
            close = [k for k in known if k.startswith(stem)][:5]
        hint = f"; closest: {', '.join(close)}" if close else ""
        super().__init__(f"unknown layer {name!r}{hint} (`phosphene layers MODEL` lists all)")
        self.name, self.close = name, close

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]


class UnitOutOfRangeError(PhospheneError):
    """A channel or class index beyond what the layer has."""


class ModelLoadError(PhospheneError):
    """An unknown model name, a missing optional package, or unreadable weights."""


class OutputError(PhospheneError):
    """An output folder or file that cannot be written (read-only, full disk, a file in the way)."""


CONSTRAINTS = "constraints/cpu.txt"


def install_hint(extra: str) -> str:
    """``pip install -e '.[EXTRA]' -c constraints/cpu.txt`` plus where to run it, for one-line errors
    (phosphene is installed from its checkout, and without the constraints file pip may swap the
    installed CPU torch for the newest CUDA build when an extra needs torchvision)."""
    return f"pip install -e '.[{extra}]' -c {CONSTRAINTS} (in the phosphene checkout; keeps your torch)"
