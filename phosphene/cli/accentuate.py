"""``phosphene accentuate``: feature accentuation of a channel or a class in the user's images."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from .. import objectives as obj
from ..accentuation import AccentuationConfig, accentuate, add_figure_columns
from ..accentuation.balance import BALANCES, STYLES
from ..accentuation.reg_layer import default_reg_layer, reg_layer_problem
from ..errors import PhospheneError
from ..layers.names import check_layers
from ..models.preprocess import load_for
from ..param import SEEDED_PARAMETERIZATIONS
from .accentuate_classes import class_choices, class_options, expand_rows, seed_classes
from .accentuate_sweep import reg_layer_sweep, split_reg_layers
from .app import main
from .common import model_options, open_model
from .options import (
    CROPS,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    SEED,
    SIDE,
    STEPS,
    quality_option,
)
from .precision_options import compile_option, precision_option


def parse_lams(text: str) -> list[float]:
    """``"0,0.5,1,2"`` -> [0.0, 0.5, 1.0, 2.0]."""
    try:
        lams = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PhospheneError(f"cannot read lambda list {text!r}; use e.g. 0,0.5,1,2") from None
    if not lams:
        raise PhospheneError(f"empty lambda list {text!r}")
    return lams


def load_seeds(paths, size: int, model=None):
    """Readable images as a list of ((C, size, size) tensor, stem), preprocessed as ``model``'s own
    evaluation transform (its crop and interpolation); unreadable ones as (path, reason)."""
    seeds, skipped = [], []
    for path in paths:
        try:
            seeds.append((load_for(model, path, size), Path(path).name))
        except Exception as exc:  # any unreadable file is skipped and reported
            skipped.append((path, type(exc).__name__))
    return seeds, skipped


@main.command("accentuate")
@quality_option("accentuate")
@model_options
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--image", "image_opts", multiple=True, type=click.Path(dir_okay=False),
              help="A seed image (repeatable; positional paths work too). All go in one batch.")
@click.option("--layer", default=None, help="Layer of the channel to accentuate.")
@click.option("--channel", type=NON_NEGATIVE, default=None, help="Channel of --layer.")
@click.option("--class", "class_index", default=None,
              help="Class logit(s) to accentuate, e.g. 1 or 1,9,130 (each in every image, one batch).")
@class_options
@click.option("--reg-layer", default=None,
              help="Layer of the latent regularization ('input' for pixel space; default: a block before "
                   "the target at about half its depth, _blocks.8 for a class of efficientnet_lite0); "
                   "several (input,_blocks.4,_blocks.8) sweep them into OUT/reg_<layer>/ and sweep.png.")
@click.option("--lam", type=NON_NEGATIVE_FLOAT, default=1.0, show_default=True, help="Regularization weight.")
@click.option("--lam-sweep", default=None, help="Several weights, e.g. 0,0.5,1,2 (one batch).")
@click.option("--steps", type=STEPS, default=100, show_default=True)
@click.option("--crops", type=CROPS, default=16, show_default=True, help="Crops per step.")
@click.option("--size", type=SIDE, default=None, help="Canvas side (default: the model's input).")
@click.option("--input-size", type=SIDE, default=None,
              help="Side the crops are resized to (default: the model's input).")
@click.option("--param", type=click.Choice(tuple(SEEDED_PARAMETERIZATIONS)), default="phase",
              show_default=True)
@click.option("--mask", type=click.Choice(["none", "attribution"]), default="none", show_default=True,
              help="'attribution' confines changes to where the objective is attributed.")
@click.option("--lr", type=POSITIVE_FLOAT, default=0.05, show_default=True)
@click.option("--paper-columns", is_flag=True,
              help="figure.png also shows the paper's Fig. 2 columns: the seed's attribution heat map "
                   "(gradient x input of the objective) and the feature's visualization (rendered "
                   "from noise, --steps steps, at the canvas side).")
@click.option("--balance", "balance_by", type=click.Choice(BALANCES), default="params",
              show_default=True,
              help="beta from gradients w.r.t. the parameters (faccent's lambda) or the image.")
@click.option("--style", type=click.Choice(STYLES), default="faccent", show_default=True,
              help="faccent: its start, logit clamp and crops (lambda as faccent's); phosphene: start "
                   "at the seed, continuous crops (closer to the seed at the same lambda).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seeds the random draws.")
@click.option("--no-fold", "no_fold", is_flag=True,
              help="Keep BatchNorm layers as they are (default: fold those not read).")
@precision_option
@compile_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def accentuate_command(model_name, weights, device, images, image_opts, layer, channel, class_index,
                       reg_layer, lam, lam_sweep, steps, crops, size, input_size, param, mask, lr,
                       paper_columns, balance_by, style, seed, no_fold, precision, use_compile, quiet,
                       out) -> None:
    """Accentuate a channel or class in images; writes PNGs, figure.png and accentuate.json."""
    paths = list(image_opts) + list(images)
    if not paths:
        raise PhospheneError("give at least one image (--image PATH or positional paths)")
    choices = class_choices()
    classes = obj.parse_units(class_index) if class_index is not None else None
    if (classes is None and not choices.per_seed) == (layer is None or channel is None) or (
            classes is not None and choices.per_seed):
        raise PhospheneError("give either --layer and --channel, or --class (or --top-logits / "
                             "--most-inhibited)")
    model = open_model(model_name, weights, device)
    several = choices.per_seed or (classes is not None and len(classes) > 1)
    if classes is not None or choices.per_seed:  # several: this one chooses the reg layer
        objective = obj.class_logit(classes[0] if classes else 0)
    else:
        check_layers(model, [layer])
        objective = obj.channel(layer, channel)
    if reg_layer is None:
        reg_layer = default_reg_layer(model, objective.layers)
        click.echo(f"reg layer: {reg_layer} (a block before {', '.join(sorted(objective.layers))} at about "
                   "half its depth; --reg-layer chooses another)")
    sweep = split_reg_layers(reg_layer)
    if sweep and paper_columns:
        raise PhospheneError("--paper-columns takes one --reg-layer (a sweep writes sweep.png instead)")
    for layer_name in sweep or [reg_layer]:
        check_layers(model, [layer_name])
        problem = reg_layer_problem(model, layer_name, objective.layers)
        if problem:
            click.echo(f"warning: {problem}", err=True)
    size = size or model.input_size
    seeds, skipped = load_seeds(paths, size, model)
    for path, reason in skipped:
        click.echo(f"skipped {path}: unreadable ({reason})", err=True)
    if not seeds:
        raise PhospheneError(f"none of the {len(paths)} images could be read")
    lams = parse_lams(lam_sweep) if lam_sweep else [lam]
    config = AccentuationConfig(reg_layer=sweep[0] if sweep else reg_layer, lam=lams, steps=steps,
                                crops=crops, input_size=input_size, param=param, mask=mask, lr=lr, seed=seed,
                                fold=not no_fold, balance_by=balance_by, style=style, precision=precision,
                                compile=use_compile,
                                **({"crop_side": choices.crop_range} if choices.crop_range else {}))
    batch, names = torch.stack([s for s, _ in seeds]), [_stem(name) for _, name in seeds]
    if several:
        batch, names, objective = expand_rows(batch, names, seed_classes(model, batch, classes, choices))
    if sweep:
        return reg_layer_sweep(model, objective, batch, names, config, sweep, out, False if quiet else None)
    result = accentuate(model, objective, batch, config, progress=False if quiet else None)
    if paper_columns:
        add_figure_columns(model, objective, result, steps=steps, seed=seed,
                           progress=False if quiet else None)
        result.settings["paper_columns"] = True
    result.settings["skipped"] = [str(p) for p, _ in skipped]
    result.save(out, names=names)
    click.echo(f"accentuated {len(names)} images x {len(lams)} lambdas in {result.seconds:.1f}s "
               f"({len(skipped)} skipped) -> {out}")
    for row in range(result.images.shape[0]):
        click.echo(f"  {names[row // len(lams)]:<32} lam={result.lams[row % len(lams)]:<5g} "
                   f"f {result.f_before[row]:>10.4g} -> {result.f_after[row]:>10.4g}   "
                   f"R {result.r_after[row]:>9.4g}")


def _stem(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:40]
