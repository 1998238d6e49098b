"""Options and helpers shared by the CLI verbs."""

from __future__ import annotations

import functools

import click
import torch

from ..models import DEFAULT_MODEL, load_model
from .options import check_device, device_callback


def model_options(func):
    """``--model``, ``--weights`` and ``--device`` options."""

    @click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                  help="efficientnet_lite0, torchvision:<name> or timm:<name>.")
    @click.option("--weights", type=click.Path(dir_okay=False), default=None,
                  help="State-dict file replacing the model's default weights.")
    @click.option("--device", default=None, callback=device_callback,
                  help="cpu, cuda, cuda:1, mps (default: cuda if available).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def target_options(required: bool = True, help: str = "Target unit LAYER:CHANNEL (or LAYER:CHANNEL@Y,X), "
                   "e.g. _blocks.8._relu1:3 (pre-activation when LAYER is an activation)."):
    """``--target``, ``--position`` and ``--post-activation``: one unit, read by `units.parse_unit`."""

    def decorate(func):
        func = click.option("--post-activation", is_flag=True,
                            help="Read the target after its activation function.")(func)
        func = click.option("--position", type=click.Choice(["mean", "centre"]), default="mean",
                            show_default=True, help="Target: channel mean or the centre position.")(func)
        return click.option("--target", required=required, default=None, help=help)(func)

    return decorate


def pick_device(device: str | None) -> str:
    """The requested device, or CUDA when there is one, else CPU."""
    if device:
        return check_device(device)
    return "cuda" if torch.cuda.is_available() else "cpu"


def open_model(model_name: str, weights: str | None, device: str | None):
    """Load the model the options describe, on the chosen device."""
    return load_model(model_name, weights=weights, device=pick_device(device))
