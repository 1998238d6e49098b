"""``phosphene atlas``: attribution or activation atlas of a mining run or an image folder."""

from __future__ import annotations

import click

from ..errors import PhospheneError
from ..inhibition.atlas import ICON_DECAY_POWER, ICON_DIRECTIONS, MODES, AtlasConfig, build_atlas
from ..mining.source import load_source
from ..units import parse_unit
from .app import main
from .common import model_options, open_model, target_options
from .options import (
    GRID,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    SIDE,
    STEPS,
    quality_option,
)


@main.command("atlas")
@quality_option("atlas")
@click.argument("run", required=False, type=click.Path())
@model_options
@click.option("--images", "images_dir", type=click.Path(), default=None,
              help="Image folder (instead of a mining RUN).")
@target_options(required=False, help="Target unit LAYER:CHANNEL (needed for attribution mode).")
@click.option("--attr-layer", "layer", required=True,
              help="Layer whose attribution (or activation) vectors are laid out.")
@click.option("--mode", type=click.Choice(MODES), default="attribution", show_default=True)
@click.option("--grid", type=GRID, default=None,
              help="Cells per side (default: about 4 images per cell, 3-20, from the number of images).")
@click.option("--per-group", type=POSITIVE, default=100, show_default=True,
              help="Images taken from each of: top f, bottom f, largest attribution norm.")
@click.option("--min-points", type=NON_NEGATIVE, default=None,
              help="Keep cells with more than this many images (default: 1 below 800 images, up to 5).")
@click.option("--icon-size", type=SIDE, default=64, show_default=True)
@click.option("--steps", type=STEPS, default=128, show_default=True)
@click.option("--batch", type=POSITIVE, default=64, show_default=True, help="Icons rendered per batch.")
@click.option("--icon-direction", type=click.Choice(ICON_DIRECTIONS), default="whitened", show_default=True,
              help="What attribution icons show: the cell's specific part, whitened or centred, or its plain "
                   "mean (icons then look alike).")
@click.option("--icon-decay", type=click.FloatRange(0, 4, min_open=True), default=ICON_DECAY_POWER,
              show_default=True, help="Icons' Fourier 1/f^decay spectrum scale: above 1 favours colour "
                                      "fields and shapes over fine fringes (1 is lucid's).")
@click.option("--size", type=SIDE, default=None, help="Image side (default: the run's or the model's).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def atlas_command(run, model_name, weights, device, images_dir, target, layer, position, post_activation,
                  mode, grid, per_group, min_points, icon_size, steps, batch, icon_direction, icon_decay,
                  size, seed, quiet, out) -> None:
    """Attribution atlas (or --mode activation) of a mining RUN or an image folder."""
    if bool(run) == bool(images_dir):
        raise PhospheneError("give either a mining RUN folder or --images DIR (not both)")
    model = open_model(model_name, weights, device)
    source = load_source(run or images_dir, model, size)
    parsed = parse_unit(target, position, not post_activation) if target else None
    config = AtlasConfig(mode=mode, grid=grid, per_group=per_group, min_points=min_points,
                         icon_size=icon_size, steps=steps, batch=batch, icon_direction=icon_direction,
                         icon_decay=icon_decay, seed=seed)
    result = build_atlas(model, source.images, source.paths, layer, parsed, config,
                         progress=False if quiet else None)
    result.save(out)
    click.echo(f"{mode} atlas: {len(source.paths)} images ({source.skipped} unreadable skipped), "
               f"{result.settings['selected']} laid out on a {result.grid}x{result.grid} grid (cells of more "
               f"than {result.settings['min_points']}), {len(result.cells)} icons -> {out}/index.html")
    if result.settings.get("warning"):
        click.echo(f"warning: {result.settings['warning']}", err=True)
    if result.settings["hint"]:
        click.echo(f"hint: {result.settings['hint']}", err=True)
