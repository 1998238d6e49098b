"""Old module paths (before the subpackages of issue 9) kept importable: ``phosphene.attribution``
is ``phosphene.inhibition.attribution`` etc. Resolved on first import, without files at the old paths."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "phosphene.seeded": "phosphene.param.seeded",
    "phosphene.accentuate": "phosphene.accentuation.accentuate",
    "phosphene.masks": "phosphene.accentuation.masks",
    "phosphene.circuits": "phosphene.accentuation.circuits",
    **{f"phosphene.{name}": f"phosphene.inhibition.{name}"
       for name in ("attribution", "tension", "tension_plots", "inversion", "atlas", "atlas_page")},
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module at its new path."""

    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """The new module is already executed."""


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
