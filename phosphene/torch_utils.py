"""Small torch helpers shared by the loops: where a model lives, freezing it, showing progress."""

from __future__ import annotations

import contextlib
import sys

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients for the duration; restores the caller's settings."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for p, flag in flags:
            p.requires_grad_(flag)


def progress_enabled(progress: bool | None) -> bool:
    """Show a bar when asked, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress
