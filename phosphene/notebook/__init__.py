"""Working in Jupyter: `UnitBrowser`, a widget over a mining run's units (computed on demand).

Every result object already shows itself in a notebook (`phosphene.io.display`); this package adds
the widget, which needs ipywidgets: ``pip install -e '.[notebook]' -c constraints/cpu.txt``.

    from phosphene.notebook import UnitBrowser
    UnitBrowser("runs/samples")          # pick a layer and a unit, press "show"
"""

from __future__ import annotations

from ..errors import PhospheneError, install_hint

try:
    import ipywidgets  # noqa: F401
except ImportError:
    raise PhospheneError(f"the unit browser needs ipywidgets: {install_hint('notebook')}") from None

from .browser import QUICK, UnitBrowser, image_choices, site_settings  # noqa: E402

__all__ = ["QUICK", "UnitBrowser", "image_choices", "site_settings"]
