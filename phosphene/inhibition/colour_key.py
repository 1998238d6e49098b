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
    side = max(8, min(size - left - 4, size - top - 22))
    plus, minus = np.meshgrid(np.linspace(0, 1, side), np.linspace(1, 0, side))  # φ⁻ grows upwards
    colour, alpha = scale_colour(plus, minus)
    picture = (1 - alpha[..., None]) * 0.62 + alpha[..., None] * colour
    canvas.paste(Image.fromarray((picture * 255 + 0.5).astype(np.uint8)), (left, top))
    fits = lambda text, room: draw.textlength(text, font=font) <= room  # noqa: E731
    draw.text((1, 0), "phi- (inhib.)" if fits("phi- (inhib.)", size - 1) else "phi-", fill="black", font=font)
    _arrow(draw, (left - 7, top + side - 1), (left - 7, top + 1))  # phi- grows upwards
    _arrow(draw, (left, top + side + 5), (left + side - 1, top + side + 5))  # phi+ to the right
    label = "phi+ (excit.)" if fits("phi+ (excit.)", size - left) else "phi+"
    draw.text((left, top + side + 9), label, fill="black", font=font)
    array = np.asarray(canvas, dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[int, int], end: tuple[int, int], head: int = 3) -> None:
    """A black axis arrow from ``start`` to ``end`` (horizontal or vertical) with a filled head."""
    draw.line([start, end], fill="black", width=1)
    (x0, y0), (x1, y1) = start, end
    if x0 == x1:  # vertical
        sign = 1 if y1 > y0 else -1
        back = y1 - sign * head * 2
        draw.polygon([(x1, y1), (x1 - head, back), (x1 + head, back)], fill="black")
    else:
        sign = 1 if x1 > x0 else -1
        back = x1 - sign * head * 2
        draw.polygon([(x1, y1), (back, y1 - head), (back, y1 + head)], fill="black")
