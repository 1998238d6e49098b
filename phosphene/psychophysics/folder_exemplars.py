"""Natural exemplars straight from an image folder (no mining run), for small folders: the channel
means of the chosen units over every file that decodes, bad files skipped with a reason (as mining
does), and the top exemplars of each unit from them (`stimuli.distinct_exemplars`).

`exemplars_from_folder` scans a folder and returns the exemplars with the skipped files
(unreadable subfolders included); `write_skipped` stores those as ``skipped.csv`` (`SKIPPED`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import PhospheneError
from ..io.decoding import ImageDecodeError, display_path, scan_images
from ..io.images import atomic_write_bytes
from ..io.progress import progress_bar
from ..layers.tap import LayerTap
from ..models.preprocess import load_for
from ..models.wrapper import as_image_model
from .stimuli import Exemplars, distinct_exemplars

SKIPPED = "skipped.csv"


@dataclass
class FolderMeans:
    """Channel means of chosen units over image files: ``means[layer]`` is (N, units) for the N
    usable ``paths``; ``skipped`` holds (path, reason) for each file that could not be decoded."""

    paths: list[Path]
    means: dict[str, torch.Tensor]
    skipped: list[tuple[str, str]]


def _decodable(model: nn.Module, paths: list[Path], size: int, skipped: list[tuple[str, str]]):
    """(paths, (n, C, S, S) batch) of the files of ``paths`` that decode; the others go to ``skipped``."""
    kept, tensors = [], []
    for path in paths:
        try:
            tensors.append(load_for(model, path, size))
            kept.append(path)
        except ImageDecodeError as exc:
            skipped.append((display_path(path), str(exc)))
    return kept, (torch.stack(tensors) if tensors else None)


@torch.no_grad()
def folder_means(model: nn.Module, images: list[Path], layer_units: dict[str, list[int]], size: int = 224,
                 batch: int = 32, progress: bool | None = None) -> FolderMeans:
    """Channel-mean activation of the chosen units for every image that decodes (a minimal stand-in
    for a mining run, `phosphene.mining`, for small folders); bad files are skipped with a reason."""
    model = as_image_model(model)
    device = model.device
    out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layer_units}
    used: list[Path] = []
    skipped: list[tuple[str, str]] = []
    with LayerTap(model, list(layer_units)) as tap:
        for start in progress_bar(range(0, len(images), batch), desc="exemplars", unit="batch",
                                  leave=False, progress=progress):
            kept, x = _decodable(model, images[start:start + batch], size, skipped)
            if x is None:
                continue
            used += kept
            acts = tap(x.to(device))
            for layer, units in layer_units.items():
                out[layer].append(acts[layer][:, units].float().mean((-2, -1)).cpu())
    means = {layer: torch.cat(chunks) if chunks else torch.zeros(0, len(layer_units[layer]))
             for layer, chunks in out.items()}
    return FolderMeans(used, means, skipped)


def unit_means(model: nn.Module, images: list[Path], layer_units: dict[str, list[int]], size: int = 224,
               batch: int = 32, progress: bool | None = None) -> dict[str, torch.Tensor]:
    """Channel-mean activation of the chosen units for every image: {layer: (N, units)};
    `ImageDecodeError` naming the first file that cannot be decoded (`folder_means` skips them)."""
    found = folder_means(model, images, layer_units, size, batch, progress)
    if found.skipped:
        path, reason = found.skipped[0]
        raise ImageDecodeError(f"cannot read image {path}: {reason}")
    return found.means


def exemplars_from_means(found: FolderMeans, layer_units: dict[str, list[int]], k: int) -> Exemplars:
    """Top ``k`` natural exemplars of each unit by channel mean, each image used by one unit per layer."""
    if not found.paths:
        raise PhospheneError(f"none of the {len(found.paths) + len(found.skipped)} images could be used"
                             + (f" (e.g. {found.skipped[0][0]}: {found.skipped[0][1]})" if found.skipped
                                else ""))
    ranked: Exemplars = {}
    for layer, units in layer_units.items():
        for column, unit in enumerate(units):
            values, order = found.means[layer][:, column].sort(descending=True)
            ranked[(layer, unit)] = [(str(found.paths[i]), float(v)) for v, i in zip(values, order)]
    return distinct_exemplars(ranked, layer_units, k)


def exemplars_from_images(model: nn.Module, images: list[Path], layer_units: dict[str, list[int]],
                          k: int, size: int = 224, batch: int = 32, progress: bool | None = None
                          ) -> Exemplars:
    """Top natural exemplars of each unit by channel mean, each image used by one unit per layer;
    files that cannot be decoded are left out (`folder_means` says which and why)."""
    if not images:
        raise PhospheneError("no images to take natural exemplars from")
    return exemplars_from_means(folder_means(model, images, layer_units, size, batch, progress),
                                layer_units, k)


def exemplars_from_folder(model: nn.Module, folder: str | Path, layer_units: dict[str, list[int]], k: int,
                          size: int = 224, progress: bool | None = None
                          ) -> tuple[Exemplars, list[tuple[str, str]]]:
    """(exemplars, skipped) for the images under ``folder``: skipped holds (path relative to the
    folder, reason) for files that could not be decoded and subfolders that could not be listed."""
    paths, problems = scan_images(folder)
    if not paths:
        raise PhospheneError(f"no images in {folder}" + (f" ({problems[0][1]})" if problems else ""))
    found = folder_means(model, paths, layer_units, size, progress=progress)
    root = Path(folder)
    skipped = [(display_path(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p, reason)
               for p, reason in found.skipped]
    return exemplars_from_means(found, layer_units, k), skipped + problems


def write_skipped(path: str | Path, skipped: list[tuple[str, str]]) -> None:
    """``path`` (a CSV with ``path``, ``reason`` columns), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows(skipped)
    atomic_write_bytes(path, buffer.getvalue().encode())


def read_skipped(path: str | Path) -> list[tuple[str, str]]:
    """The (path, reason) rows of a `write_skipped` file; [] when there is none."""
    try:
        with open(path, newline="") as handle:
            return [(row["path"], row["reason"]) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        return []
