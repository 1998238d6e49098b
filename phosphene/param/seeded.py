"""Image parameterizations that start from given images (feature accentuation's seeds).

Each returns the seed exactly at step 0 (up to the logit clamp, far below 1/255):

- `SeededPhaseImage`: faccent's parameterization. The seed is mapped to logits, colour-decorrelated
  and Fourier transformed; the phase is optimized and the magnitude kept, scaled by a learnable
  sigmoid gate initialised at ``gate_init`` (faccent: 5, i.e. 0.993). phosphene divides the gate by
  its initial value so that step 0 reproduces the seed itself rather than a 0.7 % lower-contrast copy.
- ``seeded_param("fourier" | "pixel", seeds)``: the core's `FourierImage` / `PixelImage` with their
  tensors set from the seeds.

`ConfinedImage` (in `combine`) restricts any of them to a spatial mask.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PhospheneError
from .core import FourierImage, PixelImage, _logit, decorrelate, recorrelate
from .registry import Registry

SEEDED_PARAMETERIZATIONS = Registry("seeded parameterization")  # name -> factory(seeds, **options)


def seed_logits(seeds: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] -> logits, colour-decorrelated when C is 3 (the
    parameterizations' space)."""
    return decorrelate(_logit(seeds.float()))


@SEEDED_PARAMETERIZATIONS.register("phase")
class SeededPhaseImage(nn.Module):
    """Phase of the seeds' spectrum, optimized; magnitude fixed up to a learnable sigmoid gate.

    image = sigmoid(recorrelate(irfft2(|F| * g * e^{i phi}))), g = sigmoid(gate) / sigmoid(gate_init),
    F = rfft2(decorrelate(logit(seed))). Parameters: ``phase`` and ``gate``, (N, 3, H, W//2+1) each.
    """

    def __init__(self, seeds: torch.Tensor, gate_init: float = 5.0):
        super().__init__()
        spectrum = torch.fft.rfft2(seed_logits(seeds))
        self.size = tuple(seeds.shape[-2:])
        self.gate_scale = 1.0 / (1.0 / (1.0 + math.exp(-gate_init)))
        self.register_buffer("magnitude", spectrum.abs())
        self.phase = nn.Parameter(spectrum.angle())
        self.gate = nn.Parameter(torch.full_like(self.magnitude, gate_init))

    def forward(self) -> torch.Tensor:
        magnitude = self.magnitude * torch.sigmoid(self.gate) * self.gate_scale
        t = torch.fft.irfft2(torch.polar(magnitude, self.phase), s=self.size)
        return torch.sigmoid(recorrelate(t))


@SEEDED_PARAMETERIZATIONS.register("fourier")
def _seeded_fourier(seeds: torch.Tensor) -> FourierImage:
    n, _, h, w = seeds.shape
    if h != w:
        raise PhospheneError("the fourier parameterization needs square seeds")
    image = FourierImage(n, h, channels=seeds.shape[1])
    coeffs = torch.fft.rfft2(seed_logits(seeds), norm="ortho") * 4.0  # forward divides by 4
    with torch.no_grad():
        image.spectrum.copy_(torch.view_as_real(coeffs) / image.scale)
    return image


def seeded_param(name: str, seeds: torch.Tensor, **options) -> nn.Module:
    """A parameterization called ``name`` (`SEEDED_PARAMETERIZATIONS`) whose output starts at ``seeds``."""
    if seeds.dim() != 4 or seeds.shape[1] < 1:
        raise PhospheneError(f"seeds must be (N, C, H, W) images, got shape {tuple(seeds.shape)}")
    return SEEDED_PARAMETERIZATIONS.build(name, seeds, **options)


@SEEDED_PARAMETERIZATIONS.register("pixel")
def _seeded_pixel(seeds: torch.Tensor, **options) -> PixelImage:
    return PixelImage(seeds.shape[0], seeds.shape[-1], init=seeds, channels=seeds.shape[1], **options)
