"""Contact sheets of a mining run: one PNG per layer, a row per unit, its top-k exemplars left to right.

    sheets = contact_sheets(phosphene.mining.open("runs/b8"), k=8)   # {layer: Path}

Lets a run be looked at without Python: ``contact_<layer>.png`` in the run folder. Each row starts
with the unit number; the value under each thumbnail is the unit's channel mean on that image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..io.images import save_image
from .dataset import SkipImage, decode_image
from .reader import MiningRun

LABEL_WIDTH = 44
CAPTION = 11


def sheet_name(layer: str) -> str:
    """File name of ``layer``'s contact sheet: ``contact_<layer>.png`` (dots and slashes kept safe)."""
    return "contact_" + "".join(c if c.isalnum() or c in "-_." else "-" for c in layer) + ".png"


def _thumbnail(path: Path, run: MiningRun, thumb: int) -> Image.Image:
    try:
        array = decode_image(path, run.preprocessing)  # (3, S, S) uint8, as mined
    except (SkipImage, OSError):
        return Image.new("RGB", (thumb, thumb), (200, 200, 200))
    return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0))).resize(
        (thumb, thumb), Image.Resampling.BILINEAR)


def layer_sheet(run: MiningRun, layer: str, units: Sequence[int], k: int, thumb: int = 64,
                by: str = "mean") -> Image.Image:
    """The contact sheet of ``units`` of ``layer``: a row per unit of its top ``k`` images by ``by``."""
    pad = 2
    width = LABEL_WIDTH + k * (thumb + pad) + pad
    header = 16
    row_h = thumb + CAPTION + pad
    canvas = Image.new("RGB", (width, header + len(units) * row_h + pad), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    draw.text((pad, 2), f"{layer}: top {k} images per unit by channel {by} (value under each)",
              fill="black", font=font)
    cache: dict[Path, Image.Image] = {}
    for row, unit in enumerate(units):
        y = header + row * row_h
        draw.text((pad, y + thumb // 2 - 5), f"{unit}", fill="black", font=font)
        for col, example in enumerate(run.top(layer, unit, k=k, by=by)):
            if example.path not in cache:
                cache[example.path] = _thumbnail(example.path, run, thumb)
            x = LABEL_WIDTH + pad + col * (thumb + pad)
            canvas.paste(cache[example.path], (x, y))
            draw.text((x + 1, y + thumb), f"{example.value:.2f}", fill=(60, 60, 60), font=font)
    return canvas


def contact_sheets(run: MiningRun, k: int = 8, max_units: int = 64, thumb: int = 64,
                   out: str | Path | None = None) -> dict[str, Path]:
    """Write ``contact_<layer>.png`` for every layer of ``run`` (into ``out``, default the run folder):
    the first ``max_units`` units, their top ``min(k, run.k)`` images. Returns {layer: file}."""
    out = Path(out) if out is not None else run.root
    k = max(1, min(k, run.k))
    files = {}
    for layer in run.layers:
        shape = run.manifest["layer_shapes"][layer]
        units = list(range(min(int(shape[0]), max_units)))
        path = out / sheet_name(layer)
        save_image(layer_sheet(run, layer, units, k, thumb), path)
        files[layer] = path
    return files
