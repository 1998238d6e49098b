"""``--precision`` and ``--compile``: how an optimizing verb runs its loop (`layers.precision`)."""

from __future__ import annotations

import click

from ..layers.precision import PRECISIONS

PRECISION_HELP = ("The model's forward in the loop: fp32, bf16 autocast (CUDA and CPU) or fp16 autocast "
                  "with loss scaling (CUDA only); the image parameters stay fp32.")
COMPILE_HELP = "torch.compile the truncated forward (pays on CUDA; falls back to eager with a warning)."


def precision_option(func):
    """``--precision fp32|bf16|fp16`` (default fp32), passed as ``precision``."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                        help=PRECISION_HELP)(func)


def compile_option(func):
    """``--compile``, passed as ``use_compile``."""
    return click.option("--compile", "use_compile", is_flag=True, help=COMPILE_HELP)(func)
