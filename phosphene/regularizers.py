"""Frequency penalization (Olah et al. 2017, "The Enemy of Feature Visualization"): penalties on the
rendered image itself, as objectives that combine with the others by ``+``/``-`` and weights::

    objective = obj.channel("_blocks.8", 3) - 0.05 * total_variation() - 0.1 * l1()

Each returns one value per image (to be subtracted: larger means rougher or further from grey). They
read the images the `Renderer` makes before any transform (``acts[IMAGE]``, as lucid's ``T("input")``);
in a loop that does not provide them they read the model's input (``acts["input"]``, the views).
Blurring the image every N steps is a renderer option (``RenderConfig.blur_every``, `param.blur`).

`high_frequency_share` measures what these penalties act on: the share of an image's spectral power
above half the Nyquist frequency.
"""

from __future__ import annotations

import torch

from .errors import PhospheneError
from .layers.names import INPUT
from .objectives import IMAGE, Acts, Objective
from .param.alpha import AlphaImage

__all__ = ["alpha_penalty", "high_frequency_share", "l1", "l2", "total_variation", "tv_value"]


def tv_value(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image of (N, C, H, W): mean |x[i, j+1] - x[i, j]| plus
    mean |x[i+1, j] - x[i, j]| over channels and neighbour pairs (0 for a constant image, 2 for a
    one-pixel 0/1 checkerboard)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def _images(acts: Acts) -> tuple[torch.Tensor, int]:
    """The rendered images and how often each row must repeat to match the views (``copies``)."""
    if IMAGE in acts:
        return acts[IMAGE], getattr(acts, "copies", 1)
    if INPUT in acts:
        return acts[INPUT], 1
    raise PhospheneError("pixel regularizers read the images; this loop gives neither the rendered "
                         "images nor the model input")


def _pixel_objective(value, name: str) -> Objective:
    def fn(acts: Acts) -> torch.Tensor:
        images, repeat = _images(acts)
        values = value(images.float())
        return values.repeat_interleave(repeat) if repeat > 1 else values

    return Objective(fn, [INPUT], name)


def total_variation() -> Objective:
    """Total variation of each image (`tv_value`); subtract it to penalize high frequencies."""
    return _pixel_objective(tv_value, "tv")


def l1(constant: float = 0.5) -> Objective:
    """Mean |x - constant| over the pixels of each image (default: distance from mid-grey)."""
    return _pixel_objective(lambda x: (x - constant).abs().flatten(1).mean(1), f"l1({constant:g})")


def l2(constant: float = 0.5) -> Objective:
    """Mean (x - constant)^2 over the pixels of each image (default: from mid-grey)."""
    return _pixel_objective(lambda x: (x - constant).pow(2).flatten(1).mean(1), f"l2({constant:g})")


def high_frequency_share(images: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Share of each image's spectral power (mean removed per channel) at radial frequencies above
    ``cutoff`` times the Nyquist frequency (0.5 cycles/pixel), on (N, C, H, W); (N,) in [0, 1]."""
    x = images.double()
    x = x - x.mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(1)  # (N, H, W), summed over channels
    fy = torch.fft.fftfreq(x.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(x.shape[-1], dtype=torch.float64)[None, :]
    high = (fx * fx + fy * fy).sqrt() > cutoff * 0.5
    total = power.flatten(1).sum(1).clamp_min(1e-30)
    return (power * high).flatten(1).sum(1) / total


def alpha_penalty(image: AlphaImage) -> Objective:
    """sqrt(mean alpha^2) per image of ``image`` (lucid's ``mean_alpha``); subtract it, weighted, to
    make the visualization as transparent as the objective allows."""

    def fn(acts: Acts) -> torch.Tensor:
        alpha = image.last_alpha
        if alpha is None:
            raise RuntimeError("alpha_penalty reads the AlphaImage of the render loop; call it first")
        values = alpha.float().pow(2).flatten(1).mean(1).sqrt()
        copies = getattr(acts, "copies", 1)
        return values.repeat_interleave(copies) if copies > 1 else values

    return Objective(fn, [INPUT], "alpha")
