"""``phosphene invert`` (+/- attribution accentuation and inversion) and ``phosphene atlas``."""

from __future__ import annotations

import click

from ..atlas import MODES, build_atlas, load_source
from ..attribution import parse_target
from ..errors import PhospheneError
from ..images import load_image
from ..inversion import invert
from . import main
from .common import model_options, open_model
from .options import (
    CROPS,
    GRID,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    POSITIVE_FLOAT,
    SEED,
    SIDE,
    STEPS,
)


def _target_options(func):
    func = click.option("--post-activation", is_flag=True,
                        help="Read the target after its activation function.")(func)
    func = click.option("--position", type=click.Choice(["mean", "centre"]), default="mean",
                        show_default=True, help="Target: channel mean or the centre position.")(func)
    func = click.option("--attr-layer", required=True, help="Earlier layer to attribute through.")(func)
    return click.option("--target", required=True, help="Target unit LAYER:CHANNEL, e.g. _blocks.8:3.")(func)


@main.command("invert")
@model_options
@click.option("--image", "image_path", required=True, type=click.Path(), help="Seed image.")
@_target_options
@click.option("--steps", type=STEPS, default=256, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.02, show_default=True)
@click.option("--size", type=SIDE, default=None, help="Image side (default: the model's input).")
@click.option("--crops", type=CROPS, default=4, show_default=True, help="Random crops per image per step.")
@click.option("--cossim-pow", type=NON_NEGATIVE_FLOAT, default=1.0, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def invert_command(model_name, weights, device, image_path, target, attr_layer, position, post_activation,
                   steps, lr, size, crops, cossim_pow, seed, quiet, out) -> None:
    """+ and - attribution accentuations and inversions of one image, and the unit visualization."""
    model = open_model(model_name, weights, device)
    try:
        image = load_image(image_path, size or model.input_size)
    except Exception as exc:
        raise PhospheneError(f"cannot read image {image_path}: {type(exc).__name__}") from None
    result = invert(model, image, parse_target(target, position, not post_activation), attr_layer,
                    steps=steps, lr=lr, crops=crops, cossim_pow=cossim_pow, seed_rng=seed,
                    progress=False if quiet else None)
    result.save(out)
    click.echo(f"{result.target} through {attr_layer}: seed f {result.attribution.f:.3f} -> {out}/figure.png")
    for panel, value in zip(("+ accentuation", "- accentuation", "+ inversion", "- inversion",
                             "unit visualization"), result.f.tolist()):
        click.echo(f"  {panel:<20} f {value:9.3f}")


@main.command("atlas")
@click.argument("run", required=False, type=click.Path())
@model_options
@click.option("--images", "images_dir", type=click.Path(), default=None,
              help="Image folder (instead of a mining RUN).")
@click.option("--target", default=None, help="Target unit LAYER:CHANNEL (needed for attribution mode).")
@click.option("--attr-layer", "layer", required=True,
              help="Layer whose attribution (or activation) vectors are laid out.")
@click.option("--position", type=click.Choice(["mean", "centre"]), default="mean", show_default=True)
@click.option("--post-activation", is_flag=True)
@click.option("--mode", type=click.Choice(MODES), default="attribution", show_default=True)
@click.option("--grid", type=GRID, default=20, show_default=True)
@click.option("--per-group", type=POSITIVE, default=100, show_default=True,
              help="Images taken from each of: top f, bottom f, largest attribution norm.")
@click.option("--min-points", type=NON_NEGATIVE, default=5, show_default=True,
              help="Keep cells with more than this many images.")
@click.option("--icon-size", type=SIDE, default=64, show_default=True)
@click.option("--steps", type=STEPS, default=128, show_default=True)
@click.option("--batch", type=POSITIVE, default=64, show_default=True, help="Icons rendered per batch.")
@click.option("--size", type=SIDE, default=None, help="Image side (default: the run's or the model's).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def atlas_command(run, model_name, weights, device, images_dir, target, layer, position, post_activation,
                  mode, grid, per_group, min_points, icon_size, steps, batch, size, seed, quiet, out) -> None:
    """Attribution atlas (or --mode activation) of a mining RUN or an image folder."""
    if bool(run) == bool(images_dir):
        raise PhospheneError("give either a mining RUN folder or --images DIR (not both)")
    model = open_model(model_name, weights, device)
    source = load_source(run or images_dir, model, size)
    parsed = parse_target(target, position, not post_activation) if target else None
    result = build_atlas(model, source.images, source.paths, layer, parsed, mode=mode, grid=grid,
                         per_group=per_group, min_points=min_points, icon_size=icon_size, steps=steps,
                         batch=batch, seed=seed, progress=False if quiet else None)
    result.save(out)
    click.echo(f"{mode} atlas: {len(source.paths)} images ({source.skipped} unreadable skipped), "
               f"{result.settings['selected']} laid out, {len(result.cells)} icons -> {out}/index.html")
