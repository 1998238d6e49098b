"""A toy model whose answer to the superposition diagnostic is known (docs/inhibition.md).

Images: black, with a red square (feature A) and a blue square (feature B) at different places.

    features  1x1 conv + ReLU: channel 0 = red (A), channel 1 = blue (B)
    mix       1x1 conv, 2 -> 2 channels: the attribution layer
    unit      1x1 conv, 2 -> 1: f = mean over positions of A - B (reads A positively, B negatively)

- ``superposed=True``: ``mix`` rotates by 45°: channel 0 = (A + B)/√2, channel 1 = (A - B)/√2, so
  each channel carries both features and the unit reads channel 1 alone (weight √2): its E⁺ (at A)
  and E⁻ (at B) run through the *same* channel, and only a dictionary of the two feature
  directions (1, 1)/√2 and (1, -1)/√2 separates them.
- ``superposed=False`` (control): ``mix`` is the identity, A and B have a channel each, the unit
  reads channel 0 - channel 1: E⁺ and E⁻ are already in different channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import phosphene
from phosphene.dictionary import DictionarySettings, fit_dictionary
from phosphene.dictionary.sampling import ActivationSample
from phosphene.layers.tap import LayerTap

SIDE = 32


class Toy(nn.Module):
    def __init__(self, superposed: bool):
        super().__init__()
        self.features = nn.Conv2d(3, 2, 1, bias=False)
        self.relu = nn.ReLU()
        self.mix = nn.Conv2d(2, 2, 1, bias=False)
        self.unit = nn.Conv2d(2, 1, 1, bias=False)
        s = 1 / math.sqrt(2)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])[:, :, None, None])
            mix = [[s, s], [s, -s]] if superposed else [[1.0, 0], [0, 1.0]]
            self.mix.weight.copy_(torch.tensor(mix)[:, :, None, None])
            read = [0.0, math.sqrt(2)] if superposed else [1.0, -1.0]
            self.unit.weight.copy_(torch.tensor(read)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit(self.mix(self.relu(self.features(x)))).mean((2, 3))


def toy_model(superposed: bool) -> phosphene.ImageModel:
    name = "toy_superposed" if superposed else "toy_control"
    return phosphene.ImageModel(Toy(superposed).eval(), input_size=SIDE, name=name)


def toy_images(n: int, seed: int = 0, square: int = 6, noise: float = 0.1) -> torch.Tensor:
    """(n, 3, 32, 32): a red square (A) in the left half and a blue one (B) in the right half, at
    random heights and brightnesses in [0.5, 1], on a background of uniform noise in [0, ``noise``]
    (where both features are weakly present at once)."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.uniform(0, noise, (n, 3, SIDE, SIDE)).astype(np.float32))
    for i in range(n):
        for channel, x0 in ((0, rng.integers(0, SIDE // 2 - square)),
                            (2, rng.integers(SIDE // 2, SIDE - square))):
            y0 = rng.integers(0, SIDE - square)
            images[i, channel, y0:y0 + square, x0:x0 + square] = float(rng.uniform(0.5, 1.0))
    return images


def toy_dictionary(model: phosphene.ImageModel, images: torch.Tensor, atoms: int = 2, method: str = "kmeans"):
    """A dictionary of ``mix`` learned from every position's activation vector of ``images``."""
    with torch.no_grad(), LayerTap(model, ["mix"]) as tap:
        acts = tap(images)["mix"]
    vectors = acts.movedim(1, -1).reshape(-1, acts.shape[1]).numpy().astype(np.float32)
    sample = ActivationSample(vectors, len(images), len(images), 0, len(vectors), "", "toy")
    return fit_dictionary(sample, DictionarySettings(method=method, atoms=atoms), "mix", model.name)
