"""A picture of the φ⁺/φ⁻ 2-D colour scale, to stand beside map panels in PIL figures.

The key shows the colour a map position takes for φ⁺ (excitation, left to right) and φ⁻ (inhibition,
bottom to top), both thresholded to [0, 1], over the mid grey of a faded image: grey where neither,
red for excitation only, blue for inhibition only, magenta for both (`tension_plots.scale_colour`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .tension_plots import scale_colour


def scale_key(size: int) -> torch.Tensor:
    """(3, size, size) picture in [0, 1]: the 2-D scale with ASCII labels, for ``size`` >= 48 px."""
    canvas = Image.new("RGB", (size, size), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    left, top = 14, 12
    side = max(8, min(size - left - 4, size - top - 24))
    plus, minus = np.meshgrid(np.linspace(0, 1, side), np.linspace(1, 0, side))  # φ⁻ grows upwards
    colour, alpha = scale_colour(plus, minus)
    picture = (1 - alpha[..., None]) * 0.62 + alpha[..., None] * colour
    canvas.paste(Image.fromarray((picture * 255 + 0.5).astype(np.uint8)), (left, top))
    draw.text((1, 0), "phi- (inhib.)", fill="black", font=font)
    draw.text((2, top + side // 2 - 6), "^", fill="black", font=font)
    draw.text((left, top + side + 1), "phi+ (excit.) >", fill="black", font=font)
    array = np.asarray(canvas, dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
