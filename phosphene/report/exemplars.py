"""Stage 2: dataset exemplars of each unit, straight from the mining run (no model pass).

The run holds, per unit, the top-k images by spatial max and the bottom-k by spatial min with the
(y, x) cell of that extreme in the layer's grid. Each exemplar is shown with the cell marked and a
crop around it; the cell's centre in pixels is ((y + 0.5) S / h, (x + 0.5) S / w) for an S px image
and an h x w grid. The crop's side is a quarter of the image or three cells, whichever is larger.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ._api import decode_image, mining, progress_bar
from .config import ReportSettings
from .layout import LayerFiles, write_picture

STAGE = "exemplars"
SHOWN = 160  # side of a marked exemplar
CROP = 96  # side of a crop
MARKS = {"top": (230, 30, 40), "bottom": (30, 90, 230)}


class ImageCache:
    """Decoded run images by path (many units share exemplars); keeps the last ``size`` images
    (256 images of 224 px: 39 MB)."""

    def __init__(self, run: mining.MiningRun, size: int = 256):
        self.run, self.size = run, size
        self.prep = run.preprocessing
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()

    def __call__(self, path: Path) -> np.ndarray:
        """(S, S, 3) uint8 image preprocessed as in the run."""
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        array = decode_image(path, self.prep).transpose(1, 2, 0)
        self._items[path] = array
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return array

    def chw(self, path: Path) -> np.ndarray:
        """(3, S, S) uint8, as `decode_image` gives it."""
        return self(path).transpose(2, 0, 1)


def images_of(run: mining.MiningRun) -> ImageCache:
    """The build's one `ImageCache` of ``run``: exemplars, inhibition probes and accentuation seeds
    decode each image once per build (`drop_images` frees it when the build ends)."""
    cache = getattr(run, "_report_images", None)
    if cache is None:
        cache = ImageCache(run)
        run._report_images = cache
    return cache


def drop_images(run: mining.MiningRun) -> None:
    """Forget ``run``'s decoded images (end of a build)."""
    run.__dict__.pop("_report_images", None)


def grid_of(run: mining.MiningRun, layer: str) -> tuple[int, int]:
    """(h, w) of the layer's grid in the run (1 x 1 for a layer without positions)."""
    shape = run.manifest.get("layer_shapes", {}).get(layer, [0])
    return (int(shape[1]), int(shape[2])) if len(shape) == 3 else (1, 1)


def marked(image: np.ndarray, y: int | None, x: int | None, grid: tuple[int, int],
           colour: tuple[int, int, int]) -> tuple[Image.Image, Image.Image]:
    """(the image with the extreme's cell outlined, a crop around it), both upscaled for display."""
    side = image.shape[0]
    picture = Image.fromarray(image)
    if y is None or x is None:
        return picture.resize((SHOWN, SHOWN), Image.Resampling.BICUBIC), picture.resize((CROP, CROP))
    cell_h, cell_w = side / grid[0], side / grid[1]
    cy, cx = (y + 0.5) * cell_h, (x + 0.5) * cell_w
    half = max(side / 8, 1.5 * max(cell_h, cell_w))
    left = int(round(min(max(cx - half, 0), side - 2 * half)))
    top = int(round(min(max(cy - half, 0), side - 2 * half)))
    crop = picture.crop((left, top, left + int(2 * half), top + int(2 * half)))
    big = picture.resize((SHOWN, SHOWN), Image.Resampling.BICUBIC)
    scale = SHOWN / side
    draw = ImageDraw.Draw(big)
    box = (x * cell_w * scale, y * cell_h * scale, (x + 1) * cell_w * scale, (y + 1) * cell_h * scale)
    draw.rectangle(box, outline=(255, 255, 255), width=3)
    draw.rectangle(box, outline=colour, width=2)
    return big, crop.resize((CROP, CROP), Image.Resampling.BICUBIC)


def exemplars(run: mining.MiningRun, layer: str, units: list[int], settings: ReportSettings,
              files: LayerFiles, progress: bool | None) -> None:
    """Write the marked exemplars and crops of every unit not done yet."""
    todo = files.pending(units, STAGE)
    cache, grid = images_of(run), grid_of(run, layer)
    k = min(settings.k, run.k)
    for unit in progress_bar(todo, desc=f"{layer} exemplars", unit="unit", progress=progress):
        record: dict = {"grid": list(grid), "k": k}
        for direction, by in (("top", "max"), ("bottom", "min")):
            rows = []
            for example in run.examples(layer, unit, direction, by, k):
                big, crop = marked(cache(example.path), example.y, example.x, grid, MARKS[direction])
                stem = f"{direction}_{example.rank:02d}"
                write_picture(big, files.unit_dir(unit) / f"{stem}.jpg")
                write_picture(crop, files.unit_dir(unit) / f"{stem}_crop.jpg")
                rows.append({"rank": example.rank, "index": example.index, "value": example.value,
                             "y": example.y, "x": example.x, "file": f"{stem}.jpg",
                             "crop": f"{stem}_crop.jpg", "path": _relative(run, example.path)})
            record[direction] = rows
        best = run.top(layer, unit, 1, by="mean")[0]
        record["best_mean"] = {"value": best.value, "index": best.index, "path": _relative(run, best.path)}
        record["top_mean"] = [e.index for e in run.top(layer, unit, k, by="mean")]
        files.write(unit, STAGE, record)


def _relative(run: mining.MiningRun, path: Path) -> str:
    try:
        return Path(path).relative_to(run.image_root).as_posix()
    except ValueError:
        return Path(path).name
