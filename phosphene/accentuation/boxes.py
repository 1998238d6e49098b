"""faccent's crops as faccent makes them: integer boxes, noise at the crop's resolution, its resize.

faccent (``transform.box_crop_2``, ``uniform_gaussian_noise``, ``resize``, composed per view) takes a
side fraction d ~ U(side) and a corner x0, y0 ~ U(0, 1 - d), slices rows
[int(x0 S), int((x0 + d) S)) and columns likewise (S the canvas), adds Gaussian noise of std s plus
uniform noise in +-s/2 *at the crop's resolution*, and resizes to the model's input with
``F.interpolate(bilinear, antialias=True, align_corners=True)``. Upsampling, that call samples the
crop at (L - 1) / (out - 1) pixels per output pixel from its first edge and holds the edge values
(its kernel is renormalized at the borders): views zoom a little further in than the box, noise of
a small crop becomes coarse blobs. `draw_boxes`, `box_noise` and `crop_boxes` reproduce all three.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def draw_boxes(count: int, canvas: int, side: tuple[float, float], gen: torch.Generator | None,
               device: torch.device | str) -> torch.Tensor:
    """(count, 4) int64 boxes (row0, row1, col0, col1) of faccent's ``box_crop_2`` on a canvas, on
    ``device``: the crops read them on the host, so `SharedCrops` draws them on the CPU (with a CPU
    generator) on every device, and a step needs no device round trip."""
    lo, hi = side
    delta = torch.rand(count, generator=gen, device=device) * (hi - lo) + lo
    x0 = torch.rand(count, generator=gen, device=device) * (1 - delta)
    y0 = torch.rand(count, generator=gen, device=device) * (1 - delta)
    rows0, rows1 = (x0 * canvas).long(), ((x0 + delta) * canvas).long()
    cols0, cols1 = (y0 * canvas).long(), ((y0 + delta) * canvas).long()
    rows1 = torch.maximum(rows1, rows0 + 1).clamp_max(canvas)  # at least one pixel on tiny canvases
    cols1 = torch.maximum(cols1, cols0 + 1).clamp_max(canvas)
    return torch.stack([rows0, rows1, cols0, cols1], 1)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=True)


def box_noise(boxes: torch.Tensor, size: int, std: float, gen: torch.Generator | None,
              device: torch.device | str, channels: int = 3) -> torch.Tensor:
    """(count, channels, size, size): per box, Gaussian (std) + uniform (+-std/2) noise drawn at the box's
    resolution and resized as the crop is."""
    out = []
    for r0, r1, c0, c1 in boxes.tolist():
        shape = (1, channels, r1 - r0, c1 - c0)
        noise = torch.randn(shape, generator=gen, device=device) * std
        noise += (torch.rand(shape, generator=gen, device=device) - 0.5) * std
        out.append(_resize(noise, size))
    return torch.cat(out)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int, group: int = 1) -> torch.Tensor:
    """Views (n*group*k, 3, size, size), rows (seed, copy, view), of ``images`` (n*group rows, the
    ``group`` copies of a seed adjacent) through ``boxes`` (n*k rows, a seed's k boxes adjacent)."""
    n = images.shape[0] // group
    k = boxes.shape[0] // n
    views = []
    for row, (r0, r1, c0, c1) in enumerate(boxes.tolist()):
        seed = row // k
        views.append(_resize(images[seed * group:(seed + 1) * group, :, r0:r1, c0:c1], size))
    stacked = torch.stack(views)  # (n*k, group, 3, size, size)
    return stacked.view(n, k, group, *stacked.shape[2:]).transpose(1, 2).reshape(-1, *stacked.shape[2:])
