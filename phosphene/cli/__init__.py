"""The ``phosphene`` command line: a thin layer over the Python API. `app.main` is the click group;
importing this package registers every verb on it (one module per verb)."""

from . import accentuate as _accentuate  # noqa: F401
from . import atlas as _atlas  # noqa: F401
from . import atoms as _atoms  # noqa: F401
from . import dictionary as _dictionary  # noqa: F401
from . import experiment as _experiment  # noqa: F401
from . import invert as _invert  # noqa: F401
from . import mine as _mine  # noqa: F401
from . import models as _models  # noqa: F401
from . import presets as _presets  # noqa: F401
from . import render as _render  # noqa: F401
from . import report as _report  # noqa: F401
from . import tension as _tension  # noqa: F401
from .app import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK", "main"]
