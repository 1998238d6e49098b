"""A bounded, uniform sample of a layer's activation vectors over an image folder or mining run.

Every image gives at most ``per_image`` vectors: the layer's canonical (C, H, W) view
(`phosphene.layers.tap`: NHWC outputs permuted, transformer tokens on their patch grid) read at
``per_image`` positions drawn without replacement. Images stream through the model in batches; the
vectors go through a reservoir (Algorithm R) of at most ``max_vectors`` rows, so memory is
``max_vectors x C`` floats whatever the folder's size, and the sample stays uniform over all the
vectors offered. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import PhospheneError
from ..io.progress import progress_enabled
from ..layers.names import SPECIAL_LAYERS, check_layers, split_view
from ..layers.tap import LayerTap
from ..mining.dataset import Preprocessing, batch_loader, list_hash
from ..mining.source import image_source
from ..models.preprocess import spec_for
from ..models.wrapper import as_image_model


@dataclass
class ActivationSample:
    """``vectors`` (n, C) float32 and where they came from."""

    vectors: np.ndarray
    n_images: int
    n_used: int
    n_skipped: int
    n_offered: int  # vectors offered to the reservoir (n <= n_offered)
    image_list_sha256: str
    source: str


class Reservoir:
    """A uniform sample of at most ``capacity`` rows of everything `add`-ed (Algorithm R)."""

    def __init__(self, capacity: int, width: int, seed: int = 0):
        self.rows = np.empty((capacity, width), dtype=np.float32)
        self.filled = 0
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, rows: np.ndarray) -> None:
        capacity = len(self.rows)
        take = min(capacity - self.filled, len(rows))
        self.rows[self.filled:self.filled + take] = rows[:take]
        self.filled += take
        self.seen += take
        rest = rows[take:]
        if len(rest):
            # row i of the rest is the (seen + i + 1)-th offered: it replaces a random slot with
            # probability capacity / (seen + i + 1); in order, so a later row wins a shared slot
            slots = (self.rng.random(len(rest)) * (self.seen + 1 + np.arange(len(rest)))).astype(np.int64)
            keep = slots < capacity
            self.rows[slots[keep]] = rest[keep]
            self.seen += len(rest)

    @property
    def sample(self) -> np.ndarray:
        return self.rows[:self.filled]


def check_layer(model: nn.Module, layer: str) -> None:
    """A layer a dictionary can be learned for: a named module (or its ``#cls`` view is refused)."""
    if layer in SPECIAL_LAYERS or split_view(layer)[1] is not None:
        raise PhospheneError(f"dictionaries are learned for named layers, not {layer!r}")
    check_layers(model, [layer])


def pick_positions(acts: torch.Tensor, per_image: int, seeds: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B * min(per_image, H*W), C): positions drawn per image, seeded by ``seeds``
    (one per image, e.g. its index in the list) so that the draw does not depend on batching."""
    b, c = acts.shape[:2]
    flat = acts.reshape(b, c, -1)
    positions = flat.shape[2]
    count = min(per_image, positions)
    picked = []
    for row, seed in zip(flat, seeds.tolist()):
        if count == positions:
            chosen = torch.arange(positions)
        else:
            gen = torch.Generator().manual_seed(int(seed))
            chosen = torch.randperm(positions, generator=gen)[:count]
        picked.append(row[:, chosen.to(row.device)].T)
    return torch.cat(picked).float()


def sample_activations(model: nn.Module, layer: str, source: str | os.PathLike, *, per_image: int = 64,
                       max_vectors: int = 200_000, size: int | None = None, batch_size: int = 32,
                       num_workers: int = 2, seed: int = 0, progress: bool | None = None
                       ) -> ActivationSample:
    """Sample activation vectors of ``layer`` over ``source`` (an image folder or a mining run,
    read with its preprocessing); see the module docstring."""
    model = as_image_model(model)
    check_layer(model, layer)
    if per_image < 1 or max_vectors < 1:
        raise PhospheneError("--per-image and --max-vectors must be at least 1")
    paths, root, prep, _ = image_source(source)
    if prep is None or size is not None:
        prep = Preprocessing(model.side(size), spec_for(model).crop_fraction)
    device = model.device
    reservoir: Reservoir | None = None
    used = skipped = 0
    bar = tqdm(total=len(paths), unit="image", desc=f"activations {layer}",
               disable=not progress_enabled(progress))
    with LayerTap(model, [layer], truncate=True) as tap, torch.inference_mode(), bar:
        for batch in batch_loader(paths, prep, batch_size, num_workers=num_workers):
            skipped += len(batch.skipped)
            if len(batch.indices):
                images = batch.images.to(device).float().div_(255)
                acts = tap(images)[layer]
                rows = pick_positions(acts, per_image, batch.indices + seed * 1_000_003).cpu().numpy()
                if reservoir is None:
                    reservoir = Reservoir(max_vectors, rows.shape[1], seed)
                reservoir.add(rows)
                used += len(batch.indices)
            bar.update(len(batch.indices) + len(batch.skipped))
    if reservoir is None:
        raise PhospheneError(f"none of the {len(paths)} files of {source} could be read")
    return ActivationSample(reservoir.sample.copy(), len(paths), used, skipped, reservoir.seen,
                            list_hash(root, [Path(p) for p in paths]), str(source))
