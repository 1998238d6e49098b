"""``phosphene models``, ``layers``, ``classify`` and ``download``."""

from __future__ import annotations

import click
import torch

from ..errors import PhospheneError
from ..layers.recording import layer_rows
from ..models import DEFAULT_MODEL, list_models, load_model
from ..models.families import FAMILIES, family_architectures, family_status
from ..models.outputs import logits_of
from .app import main
from .common import layout_option, model_options, odd_weights_option, offline_option, open_model
from .options import POSITIVE, SIDE


@main.command("models")
@click.argument("family", required=False, type=click.Choice(["torchvision", "timm"]))
@click.argument("pattern", required=False, default="*")
def models_command(family: str | None, pattern: str) -> None:
    """List what `--model` accepts: the built-in names and the torchvision:/timm: families; with
    FAMILY, that library's architectures (PATTERN: a shell pattern such as 'convnext*')."""
    if family is not None:
        names = family_architectures(family, pattern)
        for name in names:
            click.echo(f"{family}:{name}")
        if not names:
            raise PhospheneError(f"no {family} architecture matches {pattern!r}")
        return
    click.echo("built-in:")
    for name in list_models():
        if ":" not in name:
            click.echo(f"  {name}{'  (default)' if name == DEFAULT_MODEL else ''}")
    click.echo("families (any architecture of the library, by name):")
    for family, form, example in FAMILIES:
        click.echo(f"  {form:<32} e.g. {example}; {family_status(family)}")


@main.command("layers")
@click.argument("model_name", required=False, default="efficientnet_lite0")
@click.option("--weights", type=click.Path(dir_okay=False), default=None)
@click.option("--size", type=SIDE, default=None, help="Input side (default: the model's).")
@odd_weights_option
@offline_option
@layout_option
def layers_command(model_name: str, weights: str | None, size: int | None) -> None:
    """Print every layer of MODEL with its output shape, layout and number of units (features)."""
    model = open_model(model_name, weights, "cpu")
    size = model.side(size)  # a ViT's own side; another --size is a one-line error
    click.echo(f"# {model.name}, input (1, 3, {size}, {size}); special layers: input, logits; views of a "
               "layer (last column): LAYER#cls (class token), ATTN#heads (attention heads); shapes are per "
               "image, (R, ...) where R windows or patches of each image are folded into the batch")
    for row in layer_rows(model, size):
        shown = "x".join(map(str, row.shape)) if row.shape else "-"
        if row.refused:
            click.echo(f"{row.name:<40} {row.kind:<18} {shown:<16} not readable per image: {row.refused}")
            continue
        layout, shape = row.layout, row.shape
        units = f"{layout.canonical_shape(shape)[1]} units" if layout and shape else ""
        views = " ".join(row.views)
        click.echo(f"{row.name:<40} {row.kind:<18} {shown:<16} {str(layout or ''):<28} {units:<11} "
                   f"{views}".rstrip())


@main.command("classify")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@model_options
@click.option("--top", type=POSITIVE, default=5, show_default=True)
def classify_command(images, model_name, weights, device, top) -> None:
    """Print the top classes for each IMAGE, preprocessed as the model's own evaluation transform."""
    model = open_model(model_name, weights, device)
    names = model.class_names
    failures = 0
    for path in images:
        try:
            x = model.prepare_image(path)[None].to(model.device)
        except Exception as exc:  # unreadable images are reported and skipped
            click.echo(f"{path}: cannot read image ({type(exc).__name__})", err=True)
            failures += 1
            continue
        with torch.no_grad():
            probs = logits_of(model(x)).softmax(1)[0]
        values, indices = probs.topk(min(top, probs.numel()))
        click.echo(path)
        for p, k in zip(values.tolist(), indices.tolist()):
            label = names[k] if names else str(k)
            click.echo(f"  {p:6.3f}  {k:4d}  {label}")
    if failures:
        raise PhospheneError(f"{failures} of {len(images)} images could not be read")


@main.command("download")
@click.argument("model_names", nargs=-1, required=True)
def download_command(model_names) -> None:
    """Fill the local weight caches for MODEL_NAMES (torch.hub's, the Hugging Face Hub's), so that
    later runs work with --offline; models already cached are not downloaded again."""
    for name in model_names:
        model = load_model(name, offline=False)
        click.echo(f"{model.name}: weights ready")
