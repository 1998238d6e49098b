"""`MiningRun`: reading a finished mining run (``phosphene.mining.open(RUN)``)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..errors import LayerNotFoundError, PhospheneError, UnitOutOfRangeError
from ..io.display import Gallery, Rich, Section, View, tiles
from . import store
from .dataset import Preprocessing, decode_image
from .topk import DIRECTIONS, STATS


@dataclass(frozen=True)
class Example:
    """One dataset example of a unit: ``rank`` 0 is the most extreme. ``y, x`` locate the spatial
    max/min in the layer's grid (None for the channel mean)."""

    layer: str
    unit: int
    stat: str
    direction: str
    rank: int
    index: int
    path: Path
    value: float
    y: int | None
    x: int | None


class MiningRun(Rich):
    """A finished mining run folder: per-unit top/bottom-k examples, skipped files, manifest. In
    Jupyter it shows its layers and the best image of their first units; `view_unit` one unit."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = self.root / store.MANIFEST
        if not manifest.is_file():
            raise PhospheneError(f"not a mining run: {self.root} (no {store.MANIFEST})")
        self.manifest = store.read_json(manifest)
        if self.manifest.get("status") != "complete":
            raise PhospheneError(f"mining run {self.root} is not finished; rerun the same "
                                 "`phosphene mine` command to resume it")
        self.config = self.manifest["config"]
        self.image_root = Path(self.config["image_root"])
        self._groups: dict[tuple[str, str, str], dict[str, np.ndarray]] | None = None
        self._paths: list[Path] | None = None

    @property
    def layers(self) -> list[str]:
        return list(self.config["layers"])

    @property
    def k(self) -> int:
        return int(self.config["k"])

    @property
    def model_name(self) -> str:
        return self.config["model"]

    @property
    def preprocessing(self) -> Preprocessing:
        p = self.config["preprocessing"]
        return Preprocessing(p["size"], p["crop_fraction"], p["min_side"], p["max_pixels"],
                             p.get("max_aspect", math.inf))

    def table(self) -> pa.Table:
        """The whole top/bottom-k table (read it with pandas: ``run.table().to_pandas()``)."""
        return pq.read_table(self.root / store.TOPK)

    def image_paths(self) -> list[Path]:
        """Every listed file, by dataset index (skipped ones included)."""
        return list(self._path_list())

    def _path_list(self) -> list[Path]:
        if self._paths is None:
            self._paths = [self.image_root / p for p in store.read_image_list(self.root)]
        return self._paths

    def skipped(self) -> list[tuple[int, str, str]]:
        """(index, relative path, reason) of every file that could not be used."""
        return store.read_skipped(self.root)

    def _group(self, layer: str, stat: str, direction: str) -> dict[str, np.ndarray]:
        if self._groups is None:
            data = self.table().to_pydict()
            arrays = {n: np.asarray(v) for n, v in data.items()}
            self._groups = {}
            for key in set(zip(data["layer"], data["stat"], data["direction"])):
                mask = ((arrays["layer"] == key[0]) & (arrays["stat"] == key[1])
                        & (arrays["direction"] == key[2]))
                self._groups[key] = {n: a[mask] for n, a in arrays.items()}
        if (layer, stat, direction) not in self._groups:
            summary = self.manifest.get("summary", {})
            raise PhospheneError(f"mining run {self.root} has no examples: none of its "
                                 f"{summary.get('n_images', '?')} images could be used (reasons in "
                                 f"{self.root / store.SKIPPED})")
        return self._groups[layer, stat, direction]

    def examples(self, layer: str, unit: int, direction: str = "top", by: str = "mean",
                 k: int | None = None) -> list[Example]:
        """The ``k`` (default: all mined) most extreme images of ``unit`` of ``layer``.

        ``by``: ``mean`` (channel mean), ``max`` or ``min`` (spatial extreme, with its position);
        ``direction``: ``top`` (largest first) or ``bottom`` (smallest first).
        """
        if layer not in self.layers:
            raise LayerNotFoundError(layer, self.layers)
        if by not in STATS or direction not in DIRECTIONS:
            raise PhospheneError(f"by must be one of {STATS} and direction one of {DIRECTIONS}")
        k = self.k if k is None else k
        if not 1 <= k <= self.k:
            raise PhospheneError(f"k={k} but this run kept {self.k} images per unit")
        group = self._group(layer, by, direction)
        channels = int(group["unit"].max()) + 1 if len(group["unit"]) else 0
        if not 0 <= unit < channels:
            raise UnitOutOfRangeError(f"unit {unit} out of range: {layer} has {channels} units")
        rows = np.nonzero((group["unit"] == unit) & (group["rank"] < k))[0]
        rows = rows[np.argsort(group["rank"][rows], kind="stable")]
        paths = self._path_list()
        return [Example(layer, unit, by, direction, int(group["rank"][r]), int(group["image_index"][r]),
                        paths[int(group["image_index"][r])], float(group["value"][r]),
                        None if group["y"][r] < 0 else int(group["y"][r]),
                        None if group["x"][r] < 0 else int(group["x"][r])) for r in rows]

    def top(self, layer: str, unit: int, k: int | None = None, by: str = "mean") -> list[Example]:
        """The ``k`` images that excite ``unit`` most (largest ``by`` statistic first)."""
        return self.examples(layer, unit, "top", by, k)

    def bottom(self, layer: str, unit: int, k: int | None = None, by: str = "mean") -> list[Example]:
        """The ``k`` images with the smallest ``by`` statistic (most inhibiting first)."""
        return self.examples(layer, unit, "bottom", by, k)

    def load(self, examples: list[Example] | list[Path]) -> torch.Tensor:
        """The images of ``examples`` (or paths) preprocessed as in the run: (N, 3, S, S) in [0, 1]."""
        prep = self.preprocessing
        paths = [e.path if isinstance(e, Example) else Path(e) for e in examples]
        return torch.stack([torch.from_numpy(decode_image(p, prep)).float() / 255 for p in paths])

    def view_unit(self, layer: str, unit: int, k: int = 8, by: str = "mean") -> Gallery:
        """The top-k and bottom-k images of ``unit`` with their values, as a displayable `Gallery`."""
        sections = []
        for direction in DIRECTIONS:
            examples = self.examples(layer, unit, direction, by, min(k, self.k))
            captions = [f"#{e.index} {e.value:.2f}" + ("" if e.y is None else f"\nat ({e.y}, {e.x})")
                        for e in examples]
            title = f"{direction} {len(examples)} by {by}"
            sections.append(Section(title, tiles(self.load(examples), captions)))
        title = f"{layer}:{unit} in {self.root.name} ({self.model_name})"
        return Gallery(View(title, {"k": self.k}, sections))

    def _view(self, units: int = 8) -> View:
        summary = self.manifest.get("summary", {})
        shapes = self.manifest.get("layer_shapes", {})
        numbers = {"model": self.model_name, "images": summary.get("n_images", "?"),
                   "skipped": summary.get("n_skipped", "?"), "k": self.k,
                   "size": self.preprocessing.size, "folder": str(self.root)}
        sections = []
        for layer in self.layers[:4] if summary.get("n_used", 1) > 0 else []:
            channels = int(shapes[layer][0]) if shapes.get(layer) else units
            best = [self.top(layer, u, 1)[0] for u in range(min(units, channels))]
            captions = [f"unit {e.unit}\n{e.value:.2f}" for e in best]
            sections.append(Section(f"{layer} ({channels} units): best image of units 0-{len(best) - 1}",
                                    tiles(self.load(best), captions)))
        note = f"{len(self.layers) - 4} more layers; " if len(self.layers) > 4 else ""
        return View(f"mining run {self.root.name}", numbers, sections,
                    note=note + "numbers: channel mean; run.view_unit(layer, unit) shows one unit")

    def __repr__(self) -> str:
        return f"MiningRun({str(self.root)!r}, model={self.model_name!r}, layers={self.layers}, k={self.k})"
