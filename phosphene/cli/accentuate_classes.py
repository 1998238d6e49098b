"""``phosphene accentuate`` options for the accentuation paper's figures: several classes per seed in
one batch (``--class 1,9,130``), each image's own top or most inhibited classes (``--top-logits N``,
``--most-inhibited N``: the N largest or smallest logits of the seed), and the crop side range
(``--crop-range MIN,MAX``, fractions of the canvas).

The options store their values in the click context (``expose_value=False``); the command reads them
with `class_choices()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import click
import torch

from .. import objectives as obj
from ..errors import PhospheneError
from ..layers.names import LOGITS
from ..layers.tap import LayerTap
from ..models.outputs import logits_of
from .options import POSITIVE

CHOICES_KEY = "phosphene.accentuate_classes"


@dataclass
class ClassChoices:
    """What the options asked for: explicit classes, top / bottom N per seed, crop sides."""

    top: int = 0
    bottom: int = 0
    crop_range: tuple[float, float] | None = None

    @property
    def per_seed(self) -> bool:
        return bool(self.top or self.bottom)


def class_choices() -> ClassChoices:
    ctx = click.get_current_context(silent=True)
    return ClassChoices() if ctx is None else ctx.meta.setdefault(CHOICES_KEY, ClassChoices())


def _store(field: str):
    def callback(ctx: click.Context, _param, value):
        if value is not None:
            setattr(ctx.meta.setdefault(CHOICES_KEY, ClassChoices()), field, value)
        return value
    return callback


def parse_crop_range(ctx, param, value: str | None) -> tuple[float, float] | None:
    """``"0.2,0.6"`` -> (0.2, 0.6): crop sides as fractions of the canvas, 0 < MIN <= MAX <= 1."""
    if value is None:
        return None
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give MIN,MAX, e.g. 0.2,0.6", ctx, param) from None
    if not 0 < low <= high <= 1:
        raise click.BadParameter(f"{value!r}: need 0 < MIN <= MAX <= 1", ctx, param)
    _store("crop_range")(ctx, param, (low, high))
    return low, high


def class_options(func):
    """``--top-logits N``, ``--most-inhibited N``, ``--crop-range MIN,MAX``."""
    func = click.option("--crop-range", expose_value=False, callback=parse_crop_range, default=None,
                        metavar="MIN,MAX",
                        help="Crop sides as fractions of the canvas [default: 0.05,0.99].")(func)
    func = click.option("--most-inhibited", expose_value=False, callback=_store("bottom"), type=POSITIVE,
                        default=None, help="Accentuate each image's N smallest logits (its most "
                                           "inhibited classes), one batch.")(func)
    return click.option("--top-logits", expose_value=False, callback=_store("top"), type=POSITIVE,
                        default=None, help="Accentuate each image's N largest logits, one batch.")(func)


def seed_classes(model, seeds: torch.Tensor, explicit: list[int] | None,
                 choices: ClassChoices) -> list[list[int]]:
    """The classes to accentuate in each seed: ``explicit`` for all, or its top / bottom logits."""
    if explicit is not None:
        return [list(explicit) for _ in range(len(seeds))]
    with LayerTap(model, [LOGITS]) as tap, torch.no_grad():
        logits = logits_of(tap(seeds.to(model.device))[LOGITS]).float().cpu()
    picked = []
    for row in logits:
        order = row.argsort(descending=True).tolist()
        picked.append(order[:choices.top] + (order[-choices.bottom:][::-1] if choices.bottom else []))
    return picked


def expand_rows(seeds: torch.Tensor, names: list[str], classes: list[list[int]]
                ) -> tuple[torch.Tensor, list[str], obj.Objective]:
    """One row per (seed, class): the repeated seeds, their names (``stem_cK``) and the class objective."""
    index = [i for i, row in enumerate(classes) for _ in row]
    flat = [c for row in classes for c in row]
    if not flat:
        raise PhospheneError("no classes to accentuate")
    rows = [f"{names[i]}_c{c}" for i, row in enumerate(classes) for c in row]
    return seeds[index], rows, obj.class_logit(flat)
