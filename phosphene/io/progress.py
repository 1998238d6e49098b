"""Progress of long work: when to show it."""

from __future__ import annotations

import sys


def progress_enabled(progress: bool | None) -> bool:
    """Show a bar when asked, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress
