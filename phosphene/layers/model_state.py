"""The state of a model during a call: frozen, its memory format; each restored after (where it lives:
`phosphene.models.device.model_device`, ``ImageModel.device``)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients for the duration; restores the caller's settings, each
    module's own mode included (a wrapper in training mode around a network in eval mode stays so)."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def memory_format(model: nn.Module, channels_last: bool):
    """With ``channels_last``, the model's 4-D weights in channels-last memory order for the duration
    (faster convolutions on CPU); the caller's tensors are put back on exit."""
    if not channels_last:
        yield model
        return
    saved = [(t, t.data) for t in list(model.parameters()) + list(model.buffers()) if t.dim() == 4]
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for tensor, data in saved:
            tensor.data = data


def resolve_channels_last(channels_last: bool | None, device: torch.device) -> bool:
    """The memory format to use: as asked, or by default channels-last on the CPU (where it made a
    render step of EfficientNet-Lite0 1.6x faster, docs/benchmarks.md) and contiguous elsewhere."""
    return device.type == "cpu" if channels_last is None else bool(channels_last)
