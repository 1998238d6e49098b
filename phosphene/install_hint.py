"""The command that installs an optional extra from a phosphene checkout without replacing torch.

phosphene is installed from its checkout (``pip install -e .``), so ``pip install phosphene[extra]``
finds nothing to install; and without a constraints file pip may swap the installed CPU torch for
the newest CUDA build when an extra needs torchvision. Error messages quote `install_hint`.
"""

from __future__ import annotations

CONSTRAINTS = "constraints/cpu.txt"


def install_hint(extra: str) -> str:
    """``pip install -e '.[EXTRA]' -c constraints/cpu.txt`` plus where to run it, for one-line errors."""
    return f"pip install -e '.[{extra}]' -c {CONSTRAINTS} (in the phosphene checkout; keeps your torch)"
