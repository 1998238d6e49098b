"""Image parameterizations: ``param()`` returns (N, C, H, W) images in [0, 1] from its tensors.

- `PixelImage`: one logit per pixel and colour.
- `FourierImage`: lucid's decorrelated Fourier basis, coefficients scaled by 1/frequency.
- `MacoImage`: magnitude-constrained phase-only (Fel et al. 2023): the amplitude spectrum is fixed to
  a natural-image spectrum shipped with the package, at its own scale; only the phase is optimized.

All three work in the decorrelated colour space of ImageNet (lucid's colour matrix) and map to RGB
with a sigmoid. `PixelImage` and `FourierImage` scale the two colour-opponent columns of that matrix
by ``colour_gain`` (default `COLOUR_GAIN` = 2; 1 is lucid's matrix exactly): with lucid's matrix,
normalised by its largest column norm, a step in a colour component moves RGB 3.6x (red-green) and
7.5x (yellow-blue) less than the same step in luminance, so on networks with pastel features
(EfficientNet-Lite0) renders stay grey at the step counts people use (docs/visualization.md, "Colour").
Each is an ``nn.Module``; its ``parameters()`` are what the optimizer updates. ``channels``
(default 3) makes images for models with other input channels (1 for grayscale); colour
decorrelation applies to 3 channels only.
"""

from __future__ import annotations

import io
import math
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import Registry

# lucid's square root of the ImageNet colour covariance, normalised by its largest column norm.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
COLOUR_GAIN = 2.0  # default colour-opponent gain of the pixel and Fourier parameterizations


def colour_matrix(gain: float = 1.0) -> torch.Tensor:
    """lucid's colour matrix with its colour-opponent columns (1 and 2) scaled by ``gain``."""
    matrix = COLOR_CORRELATION.clone()
    matrix[:, 1:] *= gain
    return matrix


def _mix_colors(t: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """out[n, d] = sum_c matrix[d, c] * t[n, c] on (N, 3, H, W), as one matmul over the pixels
    (much faster on CPU than the equivalent einsum, which permutes and copies). Tensors with other
    than 3 channels (grayscale models) have no colours to mix and pass unchanged."""
    n, c, h, w = t.shape
    if c != 3:
        return t
    return (matrix.to(t) @ t.reshape(n, c, h * w)).reshape(n, -1, h, w)


def recorrelate(t: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Decorrelated colour space -> RGB logits, on (N, 3, H, W); ``gain``: see `colour_matrix`."""
    return _mix_colors(t, COLOR_CORRELATION if gain == 1.0 else colour_matrix(gain))


def decorrelate(rgb: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """RGB logits -> decorrelated colour space (inverse of `recorrelate` with the same ``gain``)."""
    return _mix_colors(rgb, torch.linalg.inv(colour_matrix(gain)))


def rfft2_freqs(h: int, w: int) -> torch.Tensor:
    """Radial frequency of each coefficient of an (h, w) real FFT: shape (h, w // 2 + 1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def _logit(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    x = x.clamp(eps, 1 - eps)
    return torch.log(x / (1 - x))


class PixelImage(nn.Module):
    """Pixels as logits: image = sigmoid(recorrelate(t, colour_gain)) (or sigmoid(t) without
    decorrelation)."""

    def __init__(self, batch: int, size: int, sd: float = 0.01, decorrelate_colors: bool = True,
                 generator: torch.Generator | None = None, init: torch.Tensor | None = None,
                 channels: int = 3, colour_gain: float = COLOUR_GAIN):
        super().__init__()
        self.decorrelate_colors = decorrelate_colors
        self.colour_gain = float(colour_gain)
        if init is not None:
            logits = _logit(init.float())
            start = decorrelate(logits, self.colour_gain) if decorrelate_colors else logits
        else:
            start = torch.randn(batch, channels, size, size, generator=generator) * sd
        self.pixels = nn.Parameter(start)

    def forward(self) -> torch.Tensor:
        t = recorrelate(self.pixels, self.colour_gain) if self.decorrelate_colors else self.pixels
        return torch.sigmoid(t)


class FourierImage(nn.Module):
    """lucid's Fourier parameterization: 1/f-scaled coefficients, decorrelated colour (its
    colour-opponent components scaled by ``colour_gain``), sigmoid."""

    def __init__(self, batch: int, size: int, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate_colors: bool = True, generator: torch.Generator | None = None,
                 channels: int = 3, colour_gain: float = COLOUR_GAIN):
        super().__init__()
        self.size = size
        self.decorrelate_colors = decorrelate_colors
        self.colour_gain = float(colour_gain)
        freqs = rfft2_freqs(size, size)
        scale = 1.0 / freqs.clamp_min(1.0 / size) ** decay_power
        self.register_buffer("scale", scale[None, None, :, :, None])
        self.spectrum = nn.Parameter(
            torch.randn(batch, channels, *freqs.shape, 2, generator=generator) * sd)

    def forward(self) -> torch.Tensor:
        coeffs = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        t = torch.fft.irfft2(coeffs, s=(self.size, self.size), norm="ortho") / 4.0
        if self.decorrelate_colors:
            t = recorrelate(t, self.colour_gain)
        return torch.sigmoid(t)


def natural_spectrum(size: int) -> torch.Tensor:
    """The shipped natural-image amplitude spectrum, resampled to (3, size, size // 2 + 1).

    Stored for 224 px (scripts/make_maco_spectrum.py); other sizes interpolate it on the normalized
    frequency grid (rows fft-shifted so that negative frequencies stay contiguous).
    """
    raw = resources.files("phosphene.data").joinpath("maco_spectrum.npy").read_bytes()
    spectrum = torch.from_numpy(np.load(io.BytesIO(raw)).astype(np.float32))
    if spectrum.shape[-2] == size:
        return spectrum
    shifted = torch.fft.fftshift(spectrum, dim=-2)[None]
    resized = F.interpolate(shifted, size=(size, size // 2 + 1), mode="bilinear",
                            align_corners=True)[0]
    return torch.fft.ifftshift(resized, dim=-2)


def spectrum_std(magnitude: torch.Tensor) -> float:
    """Pixel std of irfft2(magnitude * e^{i phi}, "ortho") over channels and pixels, without the DC
    term, for any phase phi: by Parseval, sqrt(sum_k w_k |r_k|^2 / (C H W)), w_k = 2 for the
    coefficients whose conjugates the real FFT leaves out."""
    c, h, half = magnitude.shape[-3:]
    w = 2 * (half - 1)
    weights = torch.full((half,), 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    power = magnitude.double().pow(2) * weights
    power[..., 0, 0] = 0.0
    return float((power.sum() / (c * h * w)).sqrt())


class MacoImage(nn.Module):
    """Magnitude-constrained phase-only image: irfft2(r * e^{i phi}) with r fixed, phi optimized.

    The spatial image in decorrelated colour space is standardized per image and scaled to the
    std that the natural spectrum r itself gives (`spectrum_std`, about 1.7-1.9 in logit units,
    i.e. natural-image contrast), recorrelated, and mapped to [0, 1] with a sigmoid. ``contrast``
    multiplies that scale.
    """

    def __init__(self, batch: int, size: int, generator: torch.Generator | None = None,
                 contrast: float = 1.0, channels: int = 3):
        super().__init__()
        self.size = size
        magnitude = natural_spectrum(size)
        if channels != 3:  # grayscale (or C-channel) models: the colours' mean spectrum per channel
            magnitude = magnitude.mean(0, keepdim=True).expand(channels, -1, -1).contiguous()
        self.scale = contrast * spectrum_std(magnitude)
        self.register_buffer("magnitude", magnitude[None])
        phase = (torch.rand(batch, channels, size, size // 2 + 1, generator=generator) * 2 - 1) * math.pi
        self.phase = nn.Parameter(phase)

    def forward(self) -> torch.Tensor:
        coeffs = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        t = torch.fft.irfft2(coeffs, s=(self.size, self.size), norm="ortho")
        t = t - t.mean((1, 2, 3), keepdim=True)
        t = t / t.std((1, 2, 3), keepdim=True).clamp_min(1e-6)
        return torch.sigmoid(recorrelate(self.scale * t))


PARAMETERIZATIONS = Registry("parameterization")  # name -> factory(batch, size, generator, **options)
PARAMETERIZATIONS.register("fourier")(FourierImage)
PARAMETERIZATIONS.register("pixel")(PixelImage)
PARAMETERIZATIONS.register("maco")(MacoImage)


def make_param(name: str, batch: int, size: int, generator: torch.Generator | None = None,
               **options) -> nn.Module:
    """Build the parameterization called ``name`` (one of `PARAMETERIZATIONS`)."""
    return PARAMETERIZATIONS.build(name, batch, size, generator=generator, **options)
