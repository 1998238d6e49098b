"""Image parameterizations that start from given images (feature accentuation's seeds).

Each returns the seed exactly at step 0 (up to the logit clamp, far below 1/255):

- `SeededPhaseImage`: faccent's parameterization. The seed is mapped to logits, colour-decorrelated
  and Fourier transformed; the phase is optimized and the magnitude kept, scaled by a learnable
  sigmoid gate initialised at ``gate_init`` (faccent: 5, i.e. 0.993). phosphene divides the gate by
  its initial value so that step 0 reproduces the seed itself rather than a 0.7 % lower-contrast copy.
- ``seeded_param("fourier" | "pixel", seeds)``: the core's `FourierImage` / `PixelImage` with their
  tensors set from the seeds.
- `ConfinedImage`: wraps any of them; with a spatial mask m it returns ``x0 + m * (x - x0)``, so the
  image changes only where m > 0. It keeps its last output in ``.last`` (for gradients w.r.t. x).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PhospheneError
from .core import FourierImage, PixelImage, _logit, decorrelate, recorrelate

SEEDED_PARAMETERIZATIONS = ("phase", "fourier", "pixel")


def seed_logits(seeds: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> colour-decorrelated logits (the parameterizations' space)."""
    return decorrelate(_logit(seeds.float()))


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


def _seeded_fourier(seeds: torch.Tensor) -> FourierImage:
    n, _, h, w = seeds.shape
    if h != w:
        raise PhospheneError("the fourier parameterization needs square seeds")
    image = FourierImage(n, h)
    coeffs = torch.fft.rfft2(seed_logits(seeds), norm="ortho") * 4.0  # forward divides by 4
    with torch.no_grad():
        image.spectrum.copy_(torch.view_as_real(coeffs) / image.scale)
    return image


def seeded_param(name: str, seeds: torch.Tensor, **options) -> nn.Module:
    """A parameterization called ``name`` (`SEEDED_PARAMETERIZATIONS`) whose output starts at ``seeds``."""
    if seeds.dim() != 4 or seeds.shape[1] != 3:
        raise PhospheneError(f"seeds must be (N, 3, H, W) images, got shape {tuple(seeds.shape)}")
    if name == "phase":
        return SeededPhaseImage(seeds, **options)
    if name == "fourier":
        return _seeded_fourier(seeds)
    if name == "pixel":
        return PixelImage(seeds.shape[0], seeds.shape[-1], init=seeds, **options)
    raise PhospheneError(f"unknown seeded parameterization {name!r}; choose from "
                         f"{', '.join(SEEDED_PARAMETERIZATIONS)}")


class ConfinedImage(nn.Module):
    """``inner()`` blended into the seeds by a spatial mask: x0 + m (x - x0); m (N, 1, H, W) in [0, 1].

    Without a mask it returns ``inner()`` unchanged. ``repeat`` > 1 repeats each seed and mask that
    many times (adjacent), for an inner parameterization over several copies of each seed.
    """

    def __init__(self, inner: nn.Module, seeds: torch.Tensor, mask: torch.Tensor | None = None,
                 repeat: int = 1):
        super().__init__()
        self.inner = inner
        self.register_buffer("seeds", seeds.float().repeat_interleave(repeat, 0))
        self.register_buffer("mask", None if mask is None else mask.float().repeat_interleave(repeat, 0))
        self.last: torch.Tensor | None = None

    def forward(self) -> torch.Tensor:
        x = self.inner()
        if self.mask is not None:
            x = self.seeds + self.mask * (x - self.seeds)
        self.last = x
        return x
