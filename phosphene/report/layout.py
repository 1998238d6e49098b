"""Where a site keeps its files, and the per-unit stage records that make a build resumable.

    SITE/index.html, index.json, report.json, static/
    SITE/<layer>/index.html, layer.json                   the layer page and its data
    SITE/<layer>/units/0003.html, 0003.json               a unit page and its data
    SITE/<layer>/units/0003/*.png|jpg, <stage>.json       its pictures and stage records

A stage record is written (atomically) after all files of that stage for that unit; a unit whose
record exists is not recomputed by that stage.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._api import atomic_write_bytes
from .config import layer_slug


def unit_name(unit: int) -> str:
    return f"{unit:04d}"


class LayerFiles:
    """Paths of one layer's part of a site."""

    def __init__(self, site: Path, layer: str):
        self.site, self.layer, self.slug = Path(site), layer, layer_slug(layer)
        self.root = self.site / self.slug

    def unit_dir(self, unit: int) -> Path:
        return self.root / "units" / unit_name(unit)

    def page(self, unit: int) -> Path:
        return self.root / "units" / f"{unit_name(unit)}.html"

    def data(self, unit: int) -> Path:
        return self.root / "units" / f"{unit_name(unit)}.json"

    def stage_path(self, unit: int, stage: str) -> Path:
        return self.unit_dir(unit) / f"{stage}.json"

    def done(self, unit: int, stage: str) -> bool:
        return self.stage_path(unit, stage).is_file()

    def pending(self, units: list[int], stage: str) -> list[int]:
        return [u for u in units if not self.done(u, stage)]

    def read(self, unit: int, stage: str) -> dict[str, Any]:
        return json.loads(self.stage_path(unit, stage).read_text())

    def write(self, unit: int, stage: str, record: dict[str, Any]) -> None:
        write_json(self.stage_path(unit, stage), record)

    def rel(self, unit: int, name: str) -> str:
        """Path of a unit file relative to the unit page (pages live in units/)."""
        return f"{unit_name(unit)}/{name}"


def write_json(path: Path, record: Any) -> None:
    """Strict JSON (NaN and infinities become null), written atomically."""
    text = json.dumps(_finite(record), indent=1, default=_plain, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_picture(picture: Image.Image | np.ndarray, path: Path, quality: int = 88) -> None:
    """Save a PIL image or (H, W, 3|4) uint8 array atomically; JPEG or PNG by the suffix."""
    if isinstance(picture, np.ndarray):
        picture = Image.fromarray(picture)
    buffer = io.BytesIO()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        picture.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
