"""Blur a parameterization's image in place (frequency penalization by blurring every N steps,
Nguyen et al. 2016 and Olah et al. 2017): the logits (before the sigmoid) are convolved with a
circular Gaussian of ``sigma`` pixels, by multiplying their spectrum by ``exp(-2 pi^2 sigma^2 f^2)``.

Pixel images blur their logits; Fourier images multiply their coefficients (the same operator, as the
colour mix and the inverse FFT are linear); a `ConfinedImage` blurs its inner image. A module with a
``blur_(sigma)`` method blurs itself. MaCo's amplitude is fixed, so it cannot be blurred.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PhospheneError
from .combine import ConcatImages, ConfinedImage
from .core import FourierImage, PixelImage, rfft2_freqs


def gaussian_transfer(h: int, w: int, sigma: float) -> torch.Tensor:
    """The (h, w // 2 + 1) real-FFT transfer function of a Gaussian blur of ``sigma`` pixels."""
    f = rfft2_freqs(h, w)
    return torch.exp(-2 * math.pi ** 2 * sigma ** 2 * f * f)


def blur_logits(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) convolved with a circular Gaussian of ``sigma`` pixels."""
    h, w = t.shape[-2:]
    spectrum = torch.fft.rfft2(t) * gaussian_transfer(h, w, sigma).to(t.device)
    return torch.fft.irfft2(spectrum, s=(h, w)).to(t.dtype)


def blurrable(param: nn.Module) -> bool:
    """Whether `blur_param_` can blur ``param``."""
    if hasattr(param, "blur_") or isinstance(param, (PixelImage, FourierImage)):
        return True
    if isinstance(param, ConfinedImage):
        return blurrable(param.inner)
    return isinstance(param, ConcatImages) and all(blurrable(part) for part in param.parts)


@torch.no_grad()
def blur_param_(param: nn.Module, sigma: float) -> None:
    """Blur the image of ``param`` in place (see the module docstring); `PhospheneError` if it
    cannot be blurred."""
    if sigma <= 0:
        return
    if hasattr(param, "blur_"):
        param.blur_(sigma)
    elif isinstance(param, PixelImage):
        param.pixels.copy_(blur_logits(param.pixels, sigma))
    elif isinstance(param, FourierImage):
        spectrum = param.spectrum  # (N, C, H, W // 2 + 1, 2): real and imaginary parts
        transfer = gaussian_transfer(param.size, param.size, sigma).to(spectrum.device)
        spectrum.mul_(transfer[None, None, :, :, None].to(spectrum.dtype))
    elif isinstance(param, ConfinedImage):
        blur_param_(param.inner, sigma)
    elif isinstance(param, ConcatImages):
        for part in param.parts:
            blur_param_(part, sigma)
    else:
        raise PhospheneError(f"cannot blur a {type(param).__name__} image (blur works on the pixel and "
                             "fourier parameterizations)")
