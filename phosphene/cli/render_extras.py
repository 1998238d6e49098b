"""``phosphene render`` options that reshape its objective and loop: pixel regularizers (``--tv``,
``--l1``, ``--l2``), blurring every N steps (``--blur-every``, ``--blur-sigma``).

The options store their values in the click context (``expose_value=False``) and the render command
reads them with `render_extras()`, so they add no parameters to the command's signature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import click

from .. import objectives as obj
from .. import regularizers as reg
from ..render import RenderConfig
from .options import NON_NEGATIVE, NON_NEGATIVE_FLOAT

EXTRAS_KEY = "phosphene.render_extras"


@dataclass
class RenderExtras:
    """What the extra render options asked for (defaults: nothing)."""

    tv: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.5

    @property
    def penalized(self) -> bool:
        return bool(self.tv or self.l1 or self.l2)


def render_extras() -> RenderExtras:
    """The extras of the running command (defaults outside a command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return RenderExtras()
    return ctx.meta.setdefault(EXTRAS_KEY, RenderExtras())


def _store(field: str):
    def callback(ctx: click.Context, _param, value):
        if value is not None:
            setattr(ctx.meta.setdefault(EXTRAS_KEY, RenderExtras()), field, value)
        return value
    return callback


def _option(*names: str, field: str, **kwargs):
    return click.option(*names, expose_value=False, callback=_store(field), **kwargs)


def regularizer_options(func):
    """``--tv W``, ``--l1 W``, ``--l2 W``, ``--blur-every N``, ``--blur-sigma S``."""
    func = _option("--blur-sigma", field="blur_sigma", type=NON_NEGATIVE_FLOAT, default=None,
                   help="Std in pixels of the --blur-every blur [default: 0.5].")(func)
    func = _option("--blur-every", field="blur_every", type=NON_NEGATIVE, default=None,
                   help="Blur the image every N steps (frequency penalization; pixel/fourier).")(func)
    func = _option("--l2", field="l2", type=NON_NEGATIVE_FLOAT, default=None,
                   help="Weight of the mean squared distance of the pixels from grey (subtracted).")(func)
    func = _option("--l1", field="l1", type=NON_NEGATIVE_FLOAT, default=None,
                   help="Weight of the mean absolute distance of the pixels from grey (subtracted).")(func)
    return _option("--tv", field="tv", type=NON_NEGATIVE_FLOAT, default=None,
                   help="Weight of the image's total variation (subtracted; frequency "
                        "penalization).")(func)


def penalize(objective: obj.Objective, extras: RenderExtras) -> obj.Objective:
    """``objective`` minus the weighted pixel penalties the options asked for."""
    for weight, penalty in ((extras.tv, reg.total_variation), (extras.l1, reg.l1), (extras.l2, reg.l2)):
        if weight:
            objective = objective - weight * penalty()
    return objective


def with_blur(config: RenderConfig, extras: RenderExtras) -> RenderConfig:
    """``config`` with the blur the options asked for."""
    return replace(config, blur_every=extras.blur_every, blur_sigma=extras.blur_sigma)
