"""The atom sheet: a row per atom with its feature visualization, its top dataset exemplars, its share
of the layer's energy and its heaviest units (the inhibition paper's Fig. 2, for learned directions).

    sheet = atom_sheet(model, dictionary, "images/", atoms=range(8), k=6)   # sheet.image: a PIL image
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from tqdm.auto import tqdm

from ..io.images import to_uint8
from ..io.progress import progress_enabled
from ..layers.tap import LayerTap
from ..mining.dataset import Preprocessing, batch_loader, decode_image
from ..mining.source import image_source
from ..mining.topk import RunningExtremes
from ..models.preprocess import spec_for
from ..models.wrapper import as_image_model
from ..render import RenderConfig, render
from .atoms import Dictionary

TEXT_WIDTH = 150


@dataclass
class AtomExemplars:
    """Top images per atom by the mean over positions of ``<a, atom>``: ``paths[a]`` best first,
    ``values[a]`` their means, and the preprocessing the images were read with."""

    paths: list[list[Path]]
    values: list[list[float]]
    prep: Preprocessing


def top_exemplars(model: nn.Module, dictionary: Dictionary, source: str | os.PathLike, atoms: Sequence[int],
                  k: int = 6, size: int | None = None, batch_size: int = 32, num_workers: int = 2,
                  progress: bool | None = None) -> AtomExemplars:
    """The ``k`` images of ``source`` (a folder or mining run) that drive each atom hardest."""
    model = as_image_model(model)
    paths, _, prep, _ = image_source(source)
    if prep is None or size is not None:
        prep = Preprocessing(model.side(size), spec_for(model).crop_fraction)
    top = RunningExtremes(len(atoms), k, largest=True)
    vectors = dictionary.atoms[list(atoms)]
    bar = tqdm(total=len(paths), unit="image", desc="atom exemplars", disable=not progress_enabled(progress))
    with LayerTap(model, [dictionary.layer]) as tap, torch.inference_mode(), bar:
        for batch in batch_loader(paths, prep, batch_size, num_workers=num_workers):
            if len(batch.indices):
                acts = tap(batch.images.to(model.device).float().div_(255))[dictionary.layer]
                sums = torch.einsum("bchw,kc->bk", acts.float(), vectors.to(acts.device))
                means = sums / acts[0, 0].numel()
                top.update(means.cpu(), batch.indices)
            bar.update(len(batch.indices) + len(batch.skipped))
    return AtomExemplars([[paths[i] for i in row] for row in top.index.tolist()], top.values.tolist(), prep)


def _thumbnail(path: Path, prep: Preprocessing, side: int) -> Image.Image:
    try:
        array = decode_image(path, prep)
    except Exception:  # a file that changed since: a grey square
        return Image.new("RGB", (side, side), (200, 200, 200))
    return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0))).resize((side, side))


@dataclass
class AtomSheet:
    """The sheet (``image``), its ``atoms`` in row order, the visualizations' objective values
    ``visual_values`` (mean <a, atom> over positions, as the exemplars' values) and the exemplars."""

    image: Image.Image
    atoms: list[int]
    visual_values: list[float]
    exemplars: AtomExemplars

    @property
    def beaten(self) -> int:
        """Atoms whose visualization drives them harder than their best exemplar."""
        return sum(v > (e[0] if e else float("-inf"))
                   for v, e in zip(self.visual_values, self.exemplars.values))


def compose_sheet(dictionary: Dictionary, atoms: Sequence[int], visualizations: torch.Tensor,
                  exemplars: AtomExemplars, thumb: int = 96,
                  visual_values: Sequence[float] | None = None) -> Image.Image:
    """Rows: atom caption (energy share, top units) | visualization (its value under it) | top
    exemplars with their values."""
    pad, caption, header = 3, 12, 18
    k = max((len(p) for p in exemplars.paths), default=0)
    width = TEXT_WIDTH + (k + 1) * (thumb + pad) + 2 * pad
    row_h = thumb + caption + pad
    canvas = Image.new("RGB", (width, header + len(atoms) * row_h + pad), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    draw.text((pad, 3), f"{dictionary.unit_layer} ({dictionary.method}, {dictionary.model}): visualization, "
              f"then the top {k} images by mean <a, atom> (value under each)", fill="black", font=font)
    for row, atom in enumerate(atoms):
        y = header + row * row_h
        units = ", ".join(f"{c}:{w:+.2f}" for c, w in dictionary.top_units(atom, 3))
        lines = [f"atom {atom}", f"energy {100 * float(dictionary.energy[atom]):.1f}%", "top units", units]
        for i, line in enumerate(lines):
            draw.text((pad, y + 4 + 13 * i), line, fill="black" if i == 0 else (70, 70, 70), font=font)
        x = TEXT_WIDTH
        visual = Image.fromarray(to_uint8(visualizations[row])).convert("RGB").resize((thumb, thumb))
        canvas.paste(visual, (x, y))
        draw.rectangle([x - 1, y - 1, x + thumb, y + thumb], outline=(200, 60, 60))
        if visual_values is not None:
            draw.text((x + 1, y + thumb), f"{visual_values[row]:.2f}", fill=(200, 60, 60), font=font)
        x += thumb + 2 * pad
        for path, value in zip(exemplars.paths[row], exemplars.values[row]):
            canvas.paste(_thumbnail(path, exemplars.prep, thumb), (x, y))
            draw.text((x + 1, y + thumb), f"{value:.2f}", fill=(60, 60, 60), font=font)
            x += thumb + pad
    return canvas


def atom_sheet(model: nn.Module, dictionary: Dictionary, source: str | os.PathLike,
               atoms: Sequence[int] | None = None, k: int = 6, config: RenderConfig | None = None,
               thumb: int = 96, image_size: int | None = None, num_workers: int = 2,
               progress: bool | None = None) -> AtomSheet:
    """The atom sheet (`AtomSheet`) of ``atoms`` (default: all, by energy share, largest first):
    visualizations rendered with ``config``, exemplars from ``source`` (read at ``image_size``,
    default the run's or the model's side)."""
    dictionary.check_model(as_image_model(model).name)
    if atoms is None:
        atoms = dictionary.by_energy()
    atoms = list(atoms)
    dictionary.objective(atoms)  # checks the range
    config = config or RenderConfig(steps=128, size=128)
    result = render(model, dictionary.objective(atoms), config, progress=progress)
    exemplars = top_exemplars(model, dictionary, source, atoms, k, image_size, num_workers=num_workers,
                              progress=progress)
    values = result.final.tolist()
    image = compose_sheet(dictionary, atoms, result.images, exemplars, thumb, values)
    return AtomSheet(image, atoms, values, exemplars)
