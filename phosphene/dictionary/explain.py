"""Which atoms explain a unit's top activations on images (not only its weights).

A method reconstructs the layer's C-vector at a position as ``â = Σ_k c_k components[k] (+ mean)``
(`methods.reconstruct`), so unit (channel) u's activation there is ``Σ_k c_k components[k, u]
(+ mean[u])``: atom k's *term* is ``c_k components[k, u]``. Averaged over the positions of an image
(the channel mean: the value mining ranks by and the report's f) and over the unit's top-k images
by channel mean in a mining run, the terms add up, with the mean, to the reconstructed mean
activation. An atom's *share* is ``|term_k| / Σ_j |term_j|``: non-negative, summing to 1 (the vector
whose entropy a polysemanticity score takes).

    found = unit_atoms_from_activations(model, dictionary, "runs/b8", units=[3, 96], k=8)
    found[96].shares          # (K,) numpy, sums to 1
    found[96].leading(3)      # [(atom, share, term)] largest share first
    atom_share_vectors(model, dictionary, "runs/b8")   # {unit: (K,) shares} for every unit
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import PhospheneError, UnitOutOfRangeError
from ..layers.tap import LayerTap
from ..mining.dataset import decode_image
from ..mining.reader import MiningRun
from ..models.wrapper import as_image_model
from .atoms import Dictionary

BATCH = 32


@dataclass
class UnitAtoms:
    """Atom terms of one unit over its top images: ``terms`` (K,) signed, ``shares`` (K,) = |terms|
    normalized, ``activation`` the unit's mean channel mean over those images, ``reconstruction`` the
    same from the dictionary (Σ terms + the method's mean), ``images`` their indices in the run."""

    unit: int
    terms: np.ndarray
    shares: np.ndarray
    activation: float
    reconstruction: float
    images: list[int]

    def leading(self, count: int = 3) -> list[tuple[int, float, float]]:
        """The ``count`` atoms with the largest shares: [(atom, share, term)]."""
        order = np.argsort(-self.shares, kind="stable")[:count]
        return [(int(a), float(self.shares[a]), float(self.terms[a])) for a in order]

    def to_dict(self) -> dict:
        return {"unit": self.unit, "terms": [float(t) for t in self.terms],
                "shares": [float(s) for s in self.shares], "activation": self.activation,
                "reconstruction": self.reconstruction, "images": self.images}


def _open(run: MiningRun | str | os.PathLike) -> MiningRun:
    return run if isinstance(run, MiningRun) else MiningRun(run)


def _mean_codes(model: nn.Module, dictionary: Dictionary, run: MiningRun, indices: list[int]
                ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per image index: the codes' mean over positions (K,) and the layer's channel means (C,)."""
    model = as_image_model(model)
    paths = run.image_paths()
    codes, means = {}, {}
    with LayerTap(model, [dictionary.layer], truncate=True) as tap, torch.inference_mode():
        for start in range(0, len(indices), BATCH):
            chunk = indices[start:start + BATCH]
            images = torch.stack([torch.from_numpy(decode_image(paths[i], run.preprocessing)) for i in chunk])
            acts = tap(images.to(model.device).float().div_(255))[dictionary.layer].float().cpu()
            acts = acts.reshape(acts.shape[0], acts.shape[1], -1, 1)  # (B, C, positions, 1), also for (B, C)
            per_image = dictionary.encode(acts).flatten(2).mean(2).numpy()
            channel_means = acts.flatten(2).mean(2).numpy()
            for row, index in enumerate(chunk):
                codes[index], means[index] = per_image[row], channel_means[row]
    return codes, means


def unit_atoms_from_activations(model: nn.Module, dictionary: Dictionary, run: MiningRun | str | os.PathLike,
                                units: Sequence[int] | None = None, k: int | None = None
                                ) -> dict[int, UnitAtoms]:
    """`UnitAtoms` of each unit of ``units`` (default: every channel) of the dictionary's layer over
    its top ``k`` (default: the run's k) images by channel mean in the mining run ``run``, which must
    have mined that layer (see the module docstring)."""
    run = _open(run)
    if dictionary.layer not in run.layers:
        raise PhospheneError(f"the mining run {run.root} has no top images of {dictionary.layer} (it mined "
                             f"{', '.join(run.layers)}); mine {dictionary.layer} too")
    units = list(range(dictionary.channels)) if units is None else list(units)
    bad = [u for u in units if not 0 <= u < dictionary.channels]
    if bad:
        raise UnitOutOfRangeError(f"unit {bad[0]} out of range: {dictionary.layer} has {dictionary.channels}")
    k = min(k or run.k, run.k)
    tops = {u: [e.index for e in run.top(dictionary.layer, u, k, by="mean")] for u in units}
    codes, means = _mean_codes(model, dictionary, run, sorted({i for ids in tops.values() for i in ids}))
    components = dictionary.components.numpy().astype(np.float64)
    offset = dictionary.mean.numpy() if dictionary.method == "pca" else np.zeros(dictionary.channels)
    found = {}
    for unit, ids in tops.items():
        mean_codes = np.mean([codes[i] for i in ids], axis=0).astype(np.float64)
        terms = mean_codes * components[:, unit]
        total = np.abs(terms).sum()
        shares = np.abs(terms) / total if total > 0 else np.full(len(terms), 1 / len(terms))
        found[unit] = UnitAtoms(unit, terms, shares, float(np.mean([means[i][unit] for i in ids])),
                                float(terms.sum() + offset[unit]), ids)
    return found


def atom_share_vectors(model: nn.Module, dictionary: Dictionary, run: MiningRun | str | os.PathLike,
                       units: Sequence[int] | None = None, k: int | None = None) -> dict[int, np.ndarray]:
    """Per unit, the (K,) vector of atom shares over its top images (non-negative, sum 1): the input
    of a polysemanticity score (e.g. its entropy)."""
    found = unit_atoms_from_activations(model, dictionary, run, units, k)
    return {unit: item.shares for unit, item in found.items()}
