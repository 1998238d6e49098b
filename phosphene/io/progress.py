"""Progress of long work: when to show it."""

from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where ``tqdm.auto`` draws its bars as widgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_enabled(progress: bool | None) -> bool:
    """Show a bar when asked, or by default when stderr is a terminal or in a Jupyter kernel."""
    return (sys.stderr.isatty() or in_notebook()) if progress is None else progress
