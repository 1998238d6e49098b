"""``phosphene invert``: +/- attribution accentuations and inversions of one image."""

from __future__ import annotations

import click

from ..errors import PhospheneError
from ..inhibition.inversion import invert
from ..models.preprocess import load_for
from ..units import parse_unit
from .app import main
from .common import model_options, open_model, target_options
from .options import CROPS, NON_NEGATIVE_FLOAT, POSITIVE_FLOAT, SEED, SIDE, STEPS, quality_option
from .precision_options import compile_option, precision_option


@main.command("invert")
@quality_option("invert")
@model_options
@click.option("--image", "image_path", required=True, type=click.Path(), help="Seed image.")
@target_options()
@click.option("--attr-layer", required=True, help="Earlier layer to attribute through.")
@click.option("--steps", type=STEPS, default=256, show_default=True)
@click.option("--lr", type=POSITIVE_FLOAT, default=0.02, show_default=True)
@click.option("--size", type=SIDE, default=None, help="Image side (default: the model's input).")
@click.option("--crops", type=CROPS, default=4, show_default=True, help="Random crops per image per step.")
@click.option("--cossim-pow", type=NON_NEGATIVE_FLOAT, default=1.0, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@precision_option
@compile_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
def invert_command(model_name, weights, device, image_path, target, attr_layer, position, post_activation,
                   steps, lr, size, crops, cossim_pow, seed, precision, use_compile, quiet, out) -> None:
    """+ and - attribution accentuations and inversions of one image, and the unit visualization."""
    model = open_model(model_name, weights, device)
    try:
        image = load_for(model, image_path, size)
    except Exception as exc:
        raise PhospheneError(f"cannot read image {image_path}: {type(exc).__name__}") from None
    result = invert(model, image, parse_unit(target, position, not post_activation), attr_layer,
                    steps=steps, lr=lr, crops=crops, cossim_pow=cossim_pow, seed=seed,
                    precision=precision, compile=use_compile, progress=False if quiet else None)
    result.save(out)
    click.echo(f"{result.target} through {attr_layer}: seed f {result.attribution.f:.4g} -> {out}/figure.png")
    for panel, value in zip(("+ accentuation", "- accentuation", "+ inversion", "- inversion",
                             "unit visualization"), result.f.tolist()):
        click.echo(f"  {panel:<20} f {value:>10.4g}")
