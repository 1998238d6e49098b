"""``phosphene render``: feature visualization of units of one layer, or of classes."""

from __future__ import annotations

import click

from .. import objectives as obj
from ..errors import PhospheneError
from ..layers.names import check_layers
from ..param import PARAMETERIZATIONS
from ..render import RenderConfig, render
from ..transforms import TRANSFORM_SETS
from .app import main
from .common import model_options, open_model
from .options import NON_NEGATIVE_FLOAT, POSITIVE, POSITIVE_FLOAT, SEED, SIDE, STEPS, quality_option
from .precision_options import compile_option, precision_option
from .ray_options import ray_options
from .render_batched import chunk_option, render_layer_in_batches
from .render_extras import (
    check_class_prob,
    class_objective,
    custom_objective,
    interpolation_options,
    negate,
    objective_options,
    penalize,
    regularizer_options,
    render_extras,
    render_strip,
    transparent,
    with_blur,
)
from .render_facets import facet_options, facet_options_of, render_facets_cli

OBJECTIVES = ("channel", "neuron", "deepdream")


@main.command("render")
@quality_option("render")
@model_options
@click.option("--layer", default=None, help="Layer name (see `phosphene layers`).")
@click.option("--channels", default=None, help="Units of the layer, e.g. 0-15 or 3,7,9, or all.")
@click.option("--objective", "kind", type=click.Choice(OBJECTIVES), default="channel",
              show_default=True)
@click.option("--classes", default=None, help="Class indices to render (class logits), e.g. 1,9.")
@click.option("--diversity", type=NON_NEGATIVE_FLOAT, default=0.0,
              help="Weight of the diversity term (use with --batch for several images per unit).")
@click.option("--batch", type=POSITIVE, default=None, help="Images per unit (default 1).")
@click.option("--steps", type=STEPS, default=256, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.05, show_default=True)
@click.option("--size", type=SIDE, default=None, help="Image side (default: the model's input).")
@click.option("--param", type=click.Choice(tuple(PARAMETERIZATIONS)), default="fourier", show_default=True)
@click.option("--transforms", type=click.Choice(TRANSFORM_SETS), default="standard",
              show_default=True)
@click.option("--colour-gain", "colour_gain", type=POSITIVE_FLOAT, default=None,
              help="Gain of the colour-opponent components of fourier/pixel images (default 2; 1 is lucid's "
                   "colour matrix, paler).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--amp", is_flag=True, help="The same as --precision bf16.")
@precision_option
@click.option("--no-fold", "no_fold", is_flag=True,
              help="Keep BatchNorm layers as they are (default: fold those no objective reads).")
@compile_option
@click.option("--channels-last/--contiguous", "channels_last", default=None,
              help="Memory order of the model's activations (default: channels-last on the CPU, faster).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@chunk_option
@ray_options
@regularizer_options
@objective_options
@interpolation_options
@facet_options
def render_command(model_name, weights, device, layer, channels, kind, classes, diversity, batch,
                   steps, lr, size, param, transforms, colour_gain, seed, amp, precision, no_fold,
                   use_compile, channels_last, quiet, out, chunk, ray) -> None:
    """Render images that maximize units; writes one PNG per unit, grid.png and render.json."""
    model = open_model(model_name, weights, device)
    per_unit = batch or 1
    if colour_gain is not None and param not in ("fourier", "pixel"):
        raise PhospheneError("--colour-gain applies to --param fourier or pixel")
    param_options = {"colour_gain": colour_gain} if colour_gain is not None else None
    config = RenderConfig(steps=steps, lr=lr, size=size, seed=seed, amp=amp, precision=precision,
                          fold=not no_fold, compile=use_compile, channels_last=channels_last)
    extras = render_extras()
    config = with_blur(config, extras)
    if extras.alpha is not None and (extras.interpolate or facet_options_of().facets):
        raise PhospheneError("--alpha renders units, classes or directions, not --interpolate or facets")
    if extras.interpolate:
        return render_strip(model, extras, config, transforms, quiet, out,
                            bool(channels or classes or diversity or batch))
    if facet_options_of().facets:
        return render_facets_cli(model, layer, channels, config, param, transforms, quiet, out)
    check_class_prob(classes, extras)
    custom = custom_objective(model, layer, bool(channels or classes), per_unit, seed, extras)
    if layer and channels and kind != "deepdream" and not classes and (
            chunk is not None or ray.address or channels.strip().lower() == "all"):
        if extras.penalized or extras.negative or extras.alpha is not None:
            raise PhospheneError("--tv/--l1/--l2/--negative/--alpha render one batch: drop --chunk/--ray/"
                                 "--channels all")
        return render_layer_in_batches(model, layer, channels, kind, chunk, per_unit, diversity, quiet,
                                       out, ray, config, param=param, transforms=transforms,
                                       param_options=param_options)
    if ray.address:
        raise PhospheneError("--ray renders --layer with --channels (in batches)")
    if custom:
        objective, count = custom
        units = list(range(count))
    elif classes:
        units = obj.parse_units(classes)
        objective = class_objective(extras)([u for u in units for _ in range(per_unit)])
    elif layer and kind == "deepdream":
        check_layers(model, [layer])
        units = [0]
        objective = obj.deepdream(layer)
    elif layer and channels:
        check_layers(model, [layer])
        units = obj.parse_units(channels)
        objective = getattr(obj, kind)(layer, [u for u in units for _ in range(per_unit)])
    else:
        raise PhospheneError("give --layer and --channels, --layer with --objective deepdream, "
                             "or --classes")
    objective = penalize(negate(objective, extras), extras)
    if diversity:
        if not layer:
            raise PhospheneError("--diversity needs --layer (the layer whose style is compared)")
        objective = objective + diversity * obj.diversity(layer)
    objective, param = transparent(objective, extras, len(units) * per_unit, size or model.input_size,
                                   seed, param)
    result = render(model, objective, config, batch=len(units) * per_unit, param=param,
                    transforms=transforms, param_options=param_options, progress=False if quiet else None)
    result.save(out, columns=per_unit if per_unit > 1 else None)
    click.echo(f"rendered {len(result.labels)} images in {result.seconds:.1f}s -> {out}")
    click.echo(f"  {'unit':<24} {'step 1':>10}    {'final':>10}   (objective; history in render.json)")
    first = result.history[0].tolist() if len(result.history) else [float("nan")] * len(result.labels)
    for label, start, value in zip(result.labels, first, result.final.tolist()):
        click.echo(f"  {label:<24} {start:>10.4g} -> {value:>10.4g}")
