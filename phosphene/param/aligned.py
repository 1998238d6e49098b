"""Frames that share low-resolution parameters (lucid's aligned interpolation): each frame is its own
Fourier image plus low-resolution tensors shared by all frames (one keyframe) or interpolated linearly
across them (two keyframes), added in the decorrelated colour space before the sigmoid. Neighbouring
frames then share their coarse layout, so a strip of interpolation frames lines up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blur import blur_logits, blur_param_
from .core import FourierImage, recorrelate

# (keyframes, downsampling factor) of the shared tensors, as in lucid's aligned interpolation notebook
LEVELS = ((1, 2), (1, 4), (1, 8), (2, 8), (1, 16), (2, 16))


class AlignedFrames(nn.Module):
    """``frames`` images: per-frame Fourier logits + shared low-resolution tensors (`LEVELS`)."""

    def __init__(self, frames: int, size: int, sd: float = 0.01, generator: torch.Generator | None = None,
                 channels: int = 3, levels: tuple[tuple[int, int], ...] = LEVELS):
        super().__init__()
        self.frames, self.size = frames, size
        self.factors = [factor for _, factor in levels]
        self.unique = FourierImage(frames, size, sd=sd, generator=generator, channels=channels)
        self.shared = nn.ParameterList(
            nn.Parameter(torch.randn(keys, channels, max(1, size // factor), max(1, size // factor),
                                     generator=generator) * sd)
            for keys, factor in levels)

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        """Blur every frame by ``sigma`` pixels (`param.blur`): the Fourier part exactly, each shared
        tensor at its own resolution (sigma / its downsampling factor)."""
        blur_param_(self.unique, sigma)
        for low, factor in zip(self.shared, self.factors):
            low.copy_(blur_logits(low, sigma / factor))

    def _unique_logits(self) -> torch.Tensor:
        four = self.unique
        coeffs = torch.view_as_complex((four.scale * four.spectrum).contiguous())
        return torch.fft.irfft2(coeffs, s=(self.size, self.size), norm="ortho") / 4.0

    def _spread(self, low: torch.Tensor) -> torch.Tensor:
        """(K, C, h, w) -> (frames or 1, C, size, size): keyframes interpolated linearly over the
        frames (at low resolution), then upsampled bilinearly."""
        k = low.shape[0]
        if k > 1:
            weights = F.interpolate(torch.eye(k, device=low.device)[None], size=self.frames, mode="linear",
                                    align_corners=True)[0].T  # (frames, K)
            low = (weights @ low.flatten(1)).view(self.frames, *low.shape[1:])
        return F.interpolate(low, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def forward(self) -> torch.Tensor:
        t = self._unique_logits()
        for low in self.shared:
            t = t + self._spread(low)
        if self.unique.decorrelate_colors:
            t = recorrelate(t)
        return torch.sigmoid(t)
