"""``phosphene render`` options that reshape its objective and loop: pixel regularizers (``--tv``,
``--l1``, ``--l2``), blurring every N steps (``--blur-every``, ``--blur-sigma``), negative
visualization (``--negative``, ``--unit -LAYER:CHANNEL``), random directions, class probabilities,
and interpolation between two units (``--interpolate A,B --frames N``, aligned by default).

The options store their values in the click context (``expose_value=False``) and the render command
reads them with `render_extras()`, so they add no parameters to the command's signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import click
import torch

from .. import objectives as obj
from .. import regularizers as reg
from ..errors import PhospheneError
from ..interaction import neighbour_distance, random_directions, render_interpolation
from ..io.images import atomic_write_bytes
from ..layers.names import check_layers
from ..param import AlphaImage
from ..regularizers import alpha_penalty
from ..render import RenderConfig
from ..units import unit
from .options import NON_NEGATIVE, NON_NEGATIVE_FLOAT, POSITIVE

EXTRAS_KEY = "phosphene.render_extras"


@dataclass
class RenderExtras:
    """What the extra render options asked for (defaults: nothing)."""

    tv: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.5
    negative: bool = False
    class_prob: bool = False
    random_directions: int = 0
    units: tuple[str, ...] = ()
    interpolate: str | None = None
    frames: int = 5
    aligned: bool = True
    alignment_layer: str | None = None
    alignment_weight: float = 0.1
    alpha: float | None = None  # weight of the alpha penalty of a transparent render (--alpha)

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
        if value is not None and value != ():
            setattr(ctx.meta.setdefault(EXTRAS_KEY, RenderExtras()), field, value)
        return value
    return callback


def _option(*names: str, field: str, **kwargs):
    return click.option(*names, expose_value=False, callback=_store(field), **kwargs)


def regularizer_options(func):
    """``--tv W``, ``--l1 W``, ``--l2 W``, ``--blur-every N``, ``--blur-sigma S``, ``--alpha W``."""
    func = _option("--alpha", field="alpha", type=NON_NEGATIVE_FLOAT, default=None, metavar="WEIGHT",
                   help="Transparent visualization (lucid's): an RGBA Fourier image over a new random "
                        "background every step, minus WEIGHT x its RMS opacity (at most 1: weigh it "
                        "against the unit, e.g. 60 for a neuron near 40); writes *_rgba.png beside "
                        "each image over grey.")(func)
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


def transparent(objective: obj.Objective, extras: RenderExtras, batch: int, size: int, seed: int,
                param: str) -> tuple[obj.Objective, str | AlphaImage]:
    """(objective, param) for ``--alpha``: an `AlphaImage` and the objective minus its weighted
    `alpha_penalty`; without ``--alpha`` both unchanged."""
    if extras.alpha is None:
        return objective, param
    if param != "fourier":
        raise PhospheneError("--alpha makes its own RGBA Fourier image: drop --param "
                             f"{param}")
    image = AlphaImage(batch, size, generator=torch.Generator().manual_seed(seed), seed=seed)
    return objective - extras.alpha * alpha_penalty(image), image


def penalize(objective: obj.Objective, extras: RenderExtras) -> obj.Objective:
    """``objective`` minus the weighted pixel penalties the options asked for."""
    for weight, penalty in ((extras.tv, reg.total_variation), (extras.l1, reg.l1), (extras.l2, reg.l2)):
        if weight:
            objective = objective - weight * penalty()
    return objective


def with_blur(config: RenderConfig, extras: RenderExtras) -> RenderConfig:
    """``config`` with the blur the options asked for."""
    return replace(config, blur_every=extras.blur_every, blur_sigma=extras.blur_sigma)


def objective_options(func):
    """``--negative``, ``--unit`` (repeatable), ``--random-directions N``, ``--class-prob``."""
    func = _option("--class-prob", field="class_prob", is_flag=True, default=None,
                   help="With --classes: maximize the softmax probability instead of the logit.")(func)
    func = _option("--random-directions", field="random_directions", type=POSITIVE, default=None,
                   help="With --layer: render N random directions of its channel space (seed --seed).")(func)
    func = _option("--unit", "units", field="units", multiple=True, metavar="[-]LAYER:CHANNEL",
                   help="A unit to render (repeatable, one batch); a leading - minimizes it.")(func)
    return _option("--negative", field="negative", is_flag=True, default=None,
                   help="Minimize the units instead of maximizing them (negative visualization).")(func)


def interpolation_options(func):
    """``--interpolate A,B``, ``--frames N``, ``--aligned/--unaligned``, ``--alignment-layer``,
    ``--alignment-weight``."""
    func = _option("--alignment-weight", field="alignment_weight", type=NON_NEGATIVE_FLOAT, default=None,
                   help="Weight of the neighbour-frame activation penalty [default: 0.1].")(func)
    func = _option("--alignment-layer", field="alignment_layer", default=None,
                   help="Layer of that penalty [default: the layer of A].")(func)
    func = _option("--aligned/--unaligned", field="aligned", default=None,
                   help="Frames share low-resolution parameters and a neighbour penalty "
                        "[default: aligned].")(func)
    func = _option("--frames", field="frames", type=click.IntRange(min=2, max=64), default=None,
                   help="Frames of --interpolate [default: 5].")(func)
    return _option("--interpolate", field="interpolate", default=None, metavar="A,B",
                   help="Render a strip of frames from unit A to unit B (e.g. _blocks.8:3,_blocks.8:7); "
                        "writes strip.png.")(func)


def split_pair(text: str) -> tuple[str, str]:
    """``"A,B"`` -> (A, B), where a unit may hold a comma of its own (``layer:3@2,5``)."""
    parts: list[str] = []
    for piece in text.split(","):
        if parts and ":" not in piece:
            parts[-1] += "," + piece
        else:
            parts.append(piece.strip())
    if len(parts) != 2:
        raise PhospheneError(f"--interpolate takes two units A,B (e.g. _blocks.8:3,_blocks.8:7), "
                             f"got {text!r}")
    return parts[0], parts[1]


def custom_objective(model, layer: str | None, chosen: bool, per_unit: int, seed: int,
                     extras: RenderExtras) -> tuple[obj.Objective, int] | None:
    """The objective of ``--unit`` or ``--random-directions`` and its number of units, or None.
    ``chosen``: whether --channels / --classes were given too (an error with these options)."""
    if extras.units or extras.random_directions:
        if chosen:
            raise PhospheneError("--unit and --random-directions replace --channels/--classes; give one")
    if extras.units:
        objectives = [unit(spec) for spec in extras.units for _ in range(per_unit)]
        check_layers(model, frozenset().union(*(o.layers for o in objectives)))
        return obj.stack(objectives), len(extras.units)
    if extras.random_directions:
        if not layer:
            raise PhospheneError("--random-directions needs --layer")
        check_layers(model, [layer])
        return random_directions(layer, extras.random_directions, seed, per_unit), extras.random_directions
    return None


def class_objective(extras: RenderExtras):
    """`objectives.class_prob` with ``--class-prob``, `objectives.class_logit` otherwise."""
    return obj.class_prob if extras.class_prob else obj.class_logit


def check_class_prob(classes: str | None, extras: RenderExtras) -> None:
    if extras.class_prob and not classes:
        raise PhospheneError("--class-prob needs --classes")


def negate(objective: obj.Objective, extras: RenderExtras) -> obj.Objective:
    """``-objective`` (labels marked with a leading -) with ``--negative``; else unchanged."""
    if not extras.negative:
        return objective
    negative = -objective
    negative.labels = [f"-{objective.label(i)}" for i in range(objective.batch_size or 1)]
    return negative


def render_strip(model, extras: RenderExtras, config: RenderConfig, transforms: str, quiet: bool,
                 out: str, others: bool = False) -> None:
    """``--interpolate A,B``: render the frames, write strip.png, one PNG per frame, render.json and
    interpolation.json (end objectives, neighbour distance). ``others``: whether options that choose
    other units were given (an error)."""
    if others or extras.penalized or extras.units or extras.random_directions or extras.negative:
        raise PhospheneError("--interpolate takes its units from A,B (use -LAYER:CHANNEL to minimize one); "
                             "drop --channels/--classes/--diversity/--batch/--tv/--l1/--l2/--unit/"
                             "--random-directions/--negative")
    first, last = (unit(spec) for spec in split_pair(extras.interpolate))
    check_layers(model, first.layers | last.layers
                 | ({extras.alignment_layer} if extras.alignment_layer else set()))
    result = render_interpolation(model, first, last, extras.frames, config, aligned=extras.aligned,
                                  alignment_layer=extras.alignment_layer,
                                  alignment_weight=extras.alignment_weight, transforms=transforms,
                                  progress=False if quiet else None)
    result.save(out, prefix="frame", grid_name="strip.png", columns=extras.frames)
    distance = neighbour_distance(result.images)
    record = {"a": first.label(0), "b": last.label(0), "frames": extras.frames, "aligned": extras.aligned,
              "objective_per_frame": result.final.tolist(), "neighbour_pixel_distance": distance}
    atomic_write_bytes(Path(out) / "interpolation.json", json.dumps(record, indent=2).encode())
    kind = "aligned" if extras.aligned else "unaligned"
    click.echo(f"rendered {extras.frames} {kind} frames {record['a']} -> {record['b']} in "
               f"{result.seconds:.1f}s -> {out}/strip.png")
    click.echo("  objective per frame: " + " ".join(f"{v:.3g}" for v in result.final.tolist()))
    click.echo(f"  neighbour distance (RMS pixels): {distance:.4f}")
