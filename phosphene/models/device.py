"""Which device a model runs on: the one asked for, checked against this machine, or the best one here;
`model_device`: where a model's weights are."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PhospheneError


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_device(device: str | None) -> str | None:
    """``device`` if this machine has it (None stays None); `PhospheneError` otherwise."""
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise PhospheneError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise PhospheneError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise PhospheneError(f"--device {device}: this machine has {torch.cuda.device_count()} "
                                 "CUDA device(s)")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise PhospheneError(f"--device {device}: MPS is not available here (use --device cpu)")
    elif parsed.type != "cpu":
        raise PhospheneError(f"--device {device}: phosphene runs on cpu, cuda or mps")
    return device


def pick_device(device: str | torch.device | None) -> str:
    """The requested device (checked, `check_device`), or CUDA when there is one, else CPU."""
    if device is not None:
        return check_device(str(device))
    return "cuda" if torch.cuda.is_available() else "cpu"
