"""`ImageModel`: a network plus the preprocessing that turns [0,1] images into its input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on (N, 3, H, W) images in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageModel(nn.Module):
    """Wraps a network so that every phosphene API can feed it images in [0, 1].

    Layers are named as in ``net.named_modules()`` (the wrapper adds no prefix), so the names a user
    knows from the original model work unchanged. ``forward`` takes (N, 3, H, W) in [0, 1] and returns
    the network's output (logits for classifiers).
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        input_size: int = 224,
        class_names: Sequence[str] | None = None,
        name: str = "model",
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.input_size = input_size
        self.class_names = list(class_names) if class_names is not None else None
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.input_size}"


def layer_root(model: nn.Module) -> nn.Module:
    """The module whose ``named_modules()`` names the layers of ``model``."""
    return model.net if isinstance(model, ImageModel) else model
