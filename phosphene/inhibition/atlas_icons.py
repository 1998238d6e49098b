"""What each atlas icon is rendered towards, how its frame is coloured, and how alike the icons are.

Icon directions (``ICON_DIRECTIONS``), one per kept cell from the vectors of the images in it:

- ``"mean"``: the cell's mean vector (the paper's recipe as first implemented). Attribution vectors
  share a large common component, so every cell's mean points nearly the same way and every icon
  looks alike.
- ``"centred"``: the cell's mean minus the mean of all laid-out vectors: what is specific to the cell.
- ``"whitened"``: the centred mean through the inverse covariance of the laid-out vectors (ridge
  ``eps`` times the mean eigenvalue), the activation atlas' whitening (Carter et al. 2019) applied to
  the specific part; directions the dataset varies little in count more.

Icons are rendered with the Fourier parameterization at a spectrum scale 1/f^``ICON_DECAY_POWER``
(1.5; lucid's 1 is the renders' default). Adam moves every Fourier coefficient by about the learning
rate whatever its gradient, so at 1/f every octave changes the image about equally, and the many fine
coefficients fill every icon with the same kind of phase-random colour fringes. Those fringes carry
most of the pixel variance and differ between two seeds of one direction as much as between two
directions (measured: RMS 0.175 vs 0.192), so icons that differ in the attribution layer still look
alike. At 1.5 the coarse coefficients lead: colour fields and shapes at twice the contrast, which
differ at a glance (the seed still sets where they sit; docs/inhibition.md, "Attribution atlas").

The frame of an icon is coloured by the mean f of the dataset images in its cell (every icon excites
f, so f on the icon says little); the caption under it gives that mean and the image count ("+1.2 n5").
`icon_diversity` measures how different the icons are: the mean pairwise distance between icons in
pixels and between their spatially averaged activations in the attribution layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from ..errors import PhospheneError
from ..io.images import to_uint8
from ..layers.tap import LayerTap
from ..models.wrapper import as_image_model

ICON_DIRECTIONS = ("whitened", "centred", "mean")
ICON_DECAY_POWER = 1.5


def cell_directions(vectors: np.ndarray, members: Sequence[np.ndarray], method: str = "whitened",
                    eps: float = 0.1) -> np.ndarray:
    """(K, C) icon directions from (N, C) laid-out vectors and the K cells' member indices."""
    if method not in ICON_DIRECTIONS:
        raise PhospheneError(f"unknown icon direction {method!r}; choose from {', '.join(ICON_DIRECTIONS)}")
    vectors = np.asarray(vectors, dtype=np.float64)
    means = np.stack([vectors[m].mean(0) for m in members])
    if method == "mean":
        return means.astype(np.float32)
    centre = vectors.mean(0)
    specific = means - centre
    if method == "whitened":
        centred = vectors - centre
        cov = centred.T @ centred / len(vectors)
        ridge = eps * max(float(np.trace(cov)) / len(cov), 1e-12)
        specific = np.linalg.solve(cov + ridge * np.eye(len(cov)), specific.T).T
    return specific.astype(np.float32)


def cell_f(f: np.ndarray, members: Sequence[np.ndarray]) -> np.ndarray:
    """(K,) mean f of the dataset images in each cell."""
    return np.array([float(np.mean(f[m])) for m in members])


def icon_diversity(model: nn.Module, icons: torch.Tensor, layer: str) -> dict[str, float]:
    """Mean pairwise distances between K icons (K, 3, s, s): ``pixels`` (RMS difference per pixel and
    colour, 0..1), ``activation`` (Euclidean, between the icons' spatially averaged activations in
    ``layer``) and ``activation_cosine`` (1 - cosine similarity of those)."""
    if len(icons) < 2:
        return {"pixels": 0.0, "activation": 0.0, "activation_cosine": 0.0}
    model = as_image_model(model)
    flat = icons.flatten(1).double()
    pixels = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        acts = tap(icons.to(model.device).float())[layer].float().mean((2, 3)).double().cpu()
    distances = torch.cdist(acts, acts)
    unit = acts / acts.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosine = 1 - unit @ unit.T
    pairs = ~torch.eye(len(icons), dtype=torch.bool)
    return {"pixels": float(pixels[pairs].mean()), "activation": float(distances[pairs].mean()),
            "activation_cosine": float(cosine[pairs].mean())}


def diverging_scale(values: np.ndarray) -> tuple[np.ndarray, float]:
    """(K,) values -> ((K, 3) RGB in [0, 1] on blue-white-red centred at 0, the scale's bound)."""
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm

    bound = max(float(np.abs(values).max()) if len(values) else 0.0, 1e-6)
    norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    return colormaps["RdBu_r"](norm(np.asarray(values)))[:, :3], bound


def _caption(value: float | None, count: int, width: int) -> str:
    """"+1.2 n5" (mean f, images), shortened to what fits under a ``width``-pixel icon."""
    if value is None:
        return f"n{count}"
    for text in (f"{value:+.2g} n{count}", f"{value:+.2g}"):
        if len(text) * 6 <= width:
            return text
    return f"{value:+.1g}"


def compose_atlas(icons: torch.Tensor, cells: Sequence, grid: int, frame_f: np.ndarray | None,
                  border: int = 3, captions: bool = True, key: bool = True,
                  key_label: str = "frame, caption: mean f of the cell's n images") -> Image.Image:
    """Place icon k at its cell, framed in the colour of ``frame_f[k]`` (blue < 0 < red), with a
    caption "<value> n<images>" under it and a colour key along the bottom; empty cells stay white.
    ``frame_f`` None (no target): grey frames, captions with the image count only, no key."""
    key = key and frame_f is not None
    size = icons.shape[-1] if len(icons) else 32
    caption_h = 12 if captions else 0
    step_x, step_y = size + 2 * border, size + 2 * border + caption_h
    key_h = 34 if key else 0
    width = max(grid * step_x, 180 + 6 * len(key_label) if key else 0)
    canvas = Image.new("RGB", (width, grid * step_y + key_h), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    values = np.zeros(len(cells)) if frame_f is None else np.asarray(frame_f, dtype=float)
    colours, bound = diverging_scale(values)
    if frame_f is None:
        colours = np.full((len(cells), 3), 0.75)
    for k, (icon, cell) in enumerate(zip(icons, cells)):
        colour = tuple(int(c * 255 + 0.5) for c in colours[k])
        frame = Image.new("RGB", (step_x, step_x), colour)
        frame.paste(Image.fromarray(to_uint8(icon)), (border, border))
        x, y = cell.col * step_x, cell.row * step_y
        canvas.paste(frame, (x, y))
        if captions:
            value = None if frame_f is None else float(values[k])
            draw.text((x + 1, y + step_x), _caption(value, len(cell.members), step_x),
                      fill="black", font=font)
    if key:
        _draw_key(canvas, draw, font, grid * step_y + 4, bound, key_label)
    return canvas


def _draw_key(canvas: Image.Image, draw: ImageDraw.ImageDraw, font, top: int, bound: float,
              label: str) -> None:
    """A blue-white-red bar from -bound to +bound with its label, at ``top``."""
    bar_w, left = 160, 4
    values = np.linspace(-bound, bound, bar_w)
    colours, _ = diverging_scale(values)
    bar = np.repeat((colours[None] * 255 + 0.5).astype(np.uint8), 8, axis=0)
    canvas.paste(Image.fromarray(bar), (left, top))
    draw.rectangle((left - 1, top - 1, left + bar_w, top + 8), outline="grey")
    draw.text((left, top + 10), f"{-bound:.2g}", fill="black", font=font)
    draw.text((left + bar_w // 2 - 3, top + 10), "0", fill="black", font=font)
    draw.text((left + bar_w - 6 * len(f"{bound:+.2g}"), top + 10), f"{bound:+.2g}", fill="black", font=font)
    draw.text((left + bar_w + 8, top), label, fill="black", font=font)
