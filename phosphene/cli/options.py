"""Validated option types for the CLI: every number is checked at the boundary, so bad values end
in click's one-line usage error (exit 2) before any work starts."""

from __future__ import annotations

import functools
import math

import click
from click.core import ParameterSource

from ..models.device import check_device
from ..presets import PRESETS, QUALITIES

POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
SIDE = click.IntRange(min=8, max=4096)  # an image side in pixels
STEPS = click.IntRange(min=1, max=1_000_000)
PORT = click.IntRange(min=1, max=65535)
SEED = click.IntRange(min=0, max=2**32 - 1)
WORKERS = click.IntRange(min=0, max=64)
CROPS = click.IntRange(min=1, max=256)
GRID = click.IntRange(min=1, max=200)
UNITS_PER_LAYER = click.IntRange(min=3)  # a trial shows three units of one layer
NATURALS = click.IntRange(min=2)  # one image per unit needs a reference and a query


class FiniteFloat(click.ParamType):
    """A finite float, optionally ``> 0`` (``positive``), ``>= 0`` (``non_negative``) or
    ``>= at_least``."""

    name = "float"

    def __init__(self, positive: bool = False, non_negative: bool = False,
                 at_least: float | None = None):
        self.positive, self.non_negative, self.at_least = positive, non_negative, at_least

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} must be greater than 0", param, ctx)
        if self.non_negative and number < 0:
            self.fail(f"{value!r} must not be negative", param, ctx)
        if self.at_least is not None and number < self.at_least:
            self.fail(f"{value!r} must be at least {self.at_least:g}", param, ctx)
        return number


FINITE = FiniteFloat()
POSITIVE_FLOAT = FiniteFloat(positive=True)
NON_NEGATIVE_FLOAT = FiniteFloat(non_negative=True)


def device_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: validate ``--device`` before any work (a `PhospheneError`: one line, exit 2)."""
    return check_device(value)


def quality_option(command: str):
    """``--quality draft|standard|publication`` for ``command``: fills in the preset's settings
    (`phosphene.presets`) for every option the user did not give on the command line."""
    def decorate(function):
        @functools.wraps(function)
        def with_preset(*args, **kwargs):
            quality = kwargs.pop("quality")
            if quality is not None:
                ctx = click.get_current_context()
                for name, value in PRESETS[command][quality].items():
                    if ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT):
                        kwargs[name] = value
            return function(*args, **kwargs)

        help_text = ("Preset of steps, crops and sizes: draft (minutes on a CPU), standard, publication "
                     "(the defaults). Options given explicitly win.")
        option = click.option("--quality", type=click.Choice(QUALITIES), default=None, help=help_text)
        return option(with_preset)

    return decorate
