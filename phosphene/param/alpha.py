"""Transparent images (lucid's transparent neuron visualizations): an RGBA image whose colour and
opacity are two Fourier images, composited over a new random background every step, so that only
the opaque parts can drive the objective; `regularizers.alpha_penalty` asks for as little opacity as possible.

    from phosphene.regularizers import alpha_penalty
    image = AlphaImage(batch=1, size=128)
    objective = obj.channel("_blocks.8", 3) - 0.5 * alpha_penalty(image)
    result = render(model, objective, param=image)        # result.alpha: (N, 1, H, W)

``image()`` (N, 3, H, W) is rgb * alpha + background * (1 - alpha). While gradients are on (an
optimization step) the background is random: per image a uniform random colour plus Gaussian pixel
noise (sd 0.2), clipped to [0, 1], drawn from the image's own generator; without gradients (the
final evaluation, snapshots) it is ``final_background`` (mid-grey), so the final objective is that of
the image over grey. ``image.rgba()`` gives the (N, 4, H, W) picture to save.
"""

from __future__ import annotations

import torch
from torch import nn

from .core import COLOUR_GAIN, FourierImage


class AlphaImage(nn.Module):
    """Colour (a decorrelated Fourier image) and opacity (a one-channel Fourier image, sigmoid),
    composited over a background; ``last_alpha`` (N, 1, H, W) is the opacity of the latest call."""

    def __init__(self, batch: int, size: int, sd: float = 0.01, decay_power: float = 1.0,
                 generator: torch.Generator | None = None, colour_gain: float = COLOUR_GAIN,
                 background_sd: float = 0.2, final_background: float = 0.5, seed: int = 0):
        super().__init__()
        self.colour = FourierImage(batch, size, sd, decay_power, True, generator, 3, colour_gain)
        self.opacity = FourierImage(batch, size, sd, decay_power, False, generator, 1)
        self.colour_gain = self.colour.colour_gain
        self.background_sd, self.final_background, self.seed = background_sd, final_background, seed
        self._generators: dict[str, torch.Generator] = {}
        self.last_alpha: torch.Tensor | None = None

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def background(self, like: torch.Tensor) -> torch.Tensor:
        """A random background (N, 3, H, W) like ``like``: uniform colour + Gaussian noise, clipped."""
        gen = self._generator(like.device)
        n = like.shape[0]
        colour = torch.rand(n, 3, 1, 1, generator=gen, device=like.device, dtype=like.dtype)
        noise = torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)
        return (colour + self.background_sd * noise).clamp(0, 1)

    def rgba(self) -> torch.Tensor:
        """(N, 4, H, W) colour and opacity in [0, 1]."""
        return torch.cat([self.colour(), self.opacity()], 1)

    def forward(self) -> torch.Tensor:
        rgb, alpha = self.colour(), self.opacity()
        self.last_alpha = alpha
        if torch.is_grad_enabled():
            background = self.background(rgb)
        else:
            background = torch.full_like(rgb, self.final_background)
        return rgb * alpha + background * (1 - alpha)
