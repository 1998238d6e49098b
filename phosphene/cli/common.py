"""Options and helpers shared by the CLI verbs."""

from __future__ import annotations

import functools

import click

from ..dictionary import attach
from ..layers.layouts import parse_assignments
from ..layers.names import check_layers
from ..layers.recording import set_layouts
from ..models import DEFAULT_MODEL, load_model
from .options import device_callback

OFFLINE_KEY = "phosphene.offline"
LAYOUT_KEY = "phosphene.layouts"
ODD_WEIGHTS_KEY = "phosphene.odd_weights"
DICTIONARY_KEY = "phosphene.dictionaries"


def _remember_offline(ctx: click.Context, _param, value: bool) -> bool:
    if value:
        ctx.meta[OFFLINE_KEY] = True
    return value


def offline_option(func):
    """``--offline``: forbid downloading weights (read by `open_model` from the click context)."""
    return click.option("--offline", is_flag=True, expose_value=False, callback=_remember_offline,
                        help="Never download weights: use the local caches or --weights "
                             "(also PHOSPHENE_OFFLINE=1 or HF_HUB_OFFLINE=1).")(func)


def _remember_odd_weights(ctx: click.Context, _param, value: bool) -> bool:
    if value:
        ctx.meta[ODD_WEIGHTS_KEY] = True
    return value


def odd_weights_option(func):
    """``--allow-odd-weights``: load weights `checkpoints.odd_weights` would refuse (read by
    `open_model` from the click context)."""
    return click.option("--allow-odd-weights", is_flag=True, expose_value=False,
                        callback=_remember_odd_weights,
                        help="Load --weights even when they hold NaN/Inf or integers where the model "
                             "has floats (refused by default: they cannot be a trained network's).")(func)


def odd_weights_requested() -> bool:
    """Whether the running command got ``--allow-odd-weights``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(ODD_WEIGHTS_KEY))


def _remember_layouts(ctx: click.Context, _param, value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        ctx.meta[LAYOUT_KEY] = parse_assignments(value)
    return value


def layout_option(func):
    """``--layout NAME=LAYOUT`` (repeatable): declare a layer's layout (read by `open_model`)."""
    return click.option("--layout", multiple=True, expose_value=False, callback=_remember_layouts,
                        metavar="NAME=LAYOUT",
                        help="Declare a layer's layout instead of detecting it: NCHW, NHWC, NLC, "
                             "NLC:K (K class/register tokens), NC or NCL (repeatable; docs/models.md).")(func)


def _remember_dictionaries(ctx: click.Context, _param, value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        ctx.meta[DICTIONARY_KEY] = list(value)
    return value


def dictionary_option(func):
    """``--dictionary FILE`` (repeatable): attach a learned dictionary (read by `open_model`)."""
    return click.option("--dictionary", multiple=True, expose_value=False, callback=_remember_dictionaries,
                        type=click.Path(dir_okay=False), metavar="FILE",
                        help="A dictionary from `phosphene dictionary`: its atoms become the units of the "
                             "layer LAYER.NAME, e.g. _blocks.8.kmeans16:3 (repeatable; "
                             "docs/dictionary.md).")(func)


def dictionaries_requested() -> list[str]:
    """The ``--dictionary`` files the running command got."""
    ctx = click.get_current_context(silent=True)
    return list(ctx.find_root().meta.get(DICTIONARY_KEY, [])) if ctx is not None else []


def model_options(func):
    """``--model``, ``--weights``, ``--allow-odd-weights``, ``--device``, ``--offline``, ``--layout``
    and ``--dictionary`` options."""

    @click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                  help="efficientnet_lite0/1/2, inceptionv1, torchvision:<arch>[.<WEIGHTS>] or "
                       "timm:<arch>[.<tag>] (`phosphene models`).")
    @click.option("--weights", type=click.Path(dir_okay=False), default=None,
                  help="Weights file (state dict, checkpoint or .safetensors) replacing the default "
                       "weights.")
    @odd_weights_option
    @click.option("--device", default=None, callback=device_callback,
                  help="cpu, cuda, cuda:1, mps (default: cuda if available).")
    @offline_option
    @layout_option
    @dictionary_option
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def target_options(required: bool = True, help: str = "Target unit LAYER:CHANNEL (or LAYER:CHANNEL@Y,X, "
                   "LAYER:CHANNEL@cls for a class token), e.g. _blocks.8._relu1:3 (pre-activation when "
                   "LAYER is an activation)."):
    """``--target``, ``--position`` and ``--post-activation``: one unit, read by `units.parse_unit`."""

    def decorate(func):
        func = click.option("--post-activation", is_flag=True,
                            help="Read the target after its activation function.")(func)
        func = click.option("--position", type=click.Choice(["mean", "centre"]), default="mean",
                            show_default=True, help="Target: channel mean or the centre position.")(func)
        return click.option("--target", required=required, default=None, help=help)(func)

    return decorate


def offline_requested() -> bool | None:
    """True when the running command got ``--offline``; None (the environment decides) otherwise."""
    ctx = click.get_current_context(silent=True)
    return True if ctx is not None and ctx.find_root().meta.get(OFFLINE_KEY) else None


def open_model(model_name: str, weights: str | None, device: str | None):
    """Load the model the options describe, on the chosen device, with the ``--layout`` overrides."""
    model = load_model(model_name, weights=weights, device=device, offline=offline_requested(),
                       allow_odd_weights=odd_weights_requested())
    ctx = click.get_current_context(silent=True)
    layouts = ctx.find_root().meta.get(LAYOUT_KEY) if ctx is not None else None
    if layouts:
        check_layers(model, layouts)
        set_layouts(model, layouts)
    for path in dictionaries_requested():
        attach(model, path)
    return model
