"""Tension categories (inhibition paper, Fig. 4 B-F): what kind of image each one is for a unit.

Per image and attribution layer, with e = E⁺ / mean(E⁺) and i = E⁻ / mean(E⁻) (means over the
dataset, as for the tension score T = min(e, i)) and the **overlap** of its φ⁺ and φ⁻ maps:

    overlap = Σ_p min(|φ⁺_p| / Σ|φ⁺|, |φ⁻_p| / Σ|φ⁻|)      (histogram intersection, in [0, 1])

1 when excitation and inhibition sit at the same positions in the same proportions, 0 when they
never share a position. The categories, in this order:

- ``none``     no attribution: e < ``low`` and i < ``low`` (default 0.5: both below half the mean);
- ``spatial``  tense, + and − in different places: T ≥ ``tense`` (default 1) and overlap < ``overlap``
  (default 0.5);
- ``channel``  tense, + and − at one place through different channels: T ≥ ``tense`` and overlap ≥
  ``overlap``;
- ``mei``      excitation dominates (not tense, e ≥ i): an MEI-like image;
- ``mii``      inhibition dominates (not tense, e < i): an MII-like image.

The overlap is measured at the attribution layer's own resolution (e.g. 14 × 14 for `_blocks.7` of
EfficientNet-Lite0 at 224 px), so "one place" means one cell of that grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import PhospheneError

CATEGORIES = ("mei", "mii", "none", "spatial", "channel")
DESCRIPTIONS = {
    "mei": "excitation dominates (MEI-like)",
    "mii": "inhibition dominates (MII-like)",
    "none": "no attribution (E⁺ and E⁻ both small)",
    "spatial": "tense: + and − in different places",
    "channel": "tense: + and − at one place, different channels",
}
COLOURS = {"mei": "#c0392b", "mii": "#2471a3", "none": "#9e9e9e", "spatial": "#8e44ad", "channel": "#e67e22"}


@dataclass(frozen=True)
class CategoryThresholds:
    """The thresholds of the categories (module docstring): ``low`` for "none", ``tense`` on T,
    ``overlap`` between spatially and channel-separated tension."""

    low: float = 0.5
    tense: float = 1.0
    overlap: float = 0.5

    def __post_init__(self) -> None:
        if not (self.low >= 0 and self.tense > 0 and 0 <= self.overlap <= 1):
            raise PhospheneError(f"category thresholds need low >= 0, tense > 0 and 0 <= overlap <= 1, "
                                 f"got {asdict(self)}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def map_overlap(phi_plus: torch.Tensor, phi_minus: torch.Tensor) -> torch.Tensor:
    """(N, h, w) φ⁺, φ⁻ -> (N,) histogram intersection of their normalized absolute maps; 0 when
    either map is all zero."""
    plus = phi_plus.abs().flatten(1).double()
    minus = phi_minus.abs().flatten(1).double()
    plus_sum, minus_sum = plus.sum(1, keepdim=True), minus.sum(1, keepdim=True)
    share = torch.minimum(plus / plus_sum.clamp_min(1e-30), minus / minus_sum.clamp_min(1e-30)).sum(1)
    empty = (plus_sum.squeeze(1) <= 0) | (minus_sum.squeeze(1) <= 0)
    return share.masked_fill(empty, 0.0).float()


def categorize(e_plus: np.ndarray, e_minus: np.ndarray, overlap: np.ndarray,
               thresholds: CategoryThresholds | None = None) -> np.ndarray:
    """The category (a string of `CATEGORIES`) of each image, from its E⁺, E⁻ and map overlap."""
    t = thresholds or CategoryThresholds()
    e_plus, e_minus, overlap = (np.asarray(v, np.float64) for v in (e_plus, e_minus, overlap))
    if not (e_plus.shape == e_minus.shape == overlap.shape):
        raise PhospheneError(f"E⁺, E⁻ and overlap need one value per image, got shapes "
                             f"{e_plus.shape}, {e_minus.shape}, {overlap.shape}")
    e = e_plus / max(float(e_plus.mean()), 1e-12) if len(e_plus) else e_plus
    i = e_minus / max(float(e_minus.mean()), 1e-12) if len(e_minus) else e_minus
    tense = np.minimum(e, i) >= t.tense
    return np.select(
        [(e < t.low) & (i < t.low), tense & (overlap < t.overlap), tense, e >= i],
        ["none", "spatial", "channel", "mei"], default="mii").astype(object)


def category_counts(categories: np.ndarray) -> dict[str, int]:
    """Images per category, every category listed (0 when absent)."""
    values = list(categories)
    return {name: values.count(name) for name in CATEGORIES}


def category_examples(categories: np.ndarray, e_plus: np.ndarray, e_minus: np.ndarray, n: int
                      ) -> dict[str, np.ndarray]:
    """Row positions of up to ``n`` examples per category: the clearest cases first (largest E⁺ for
    mei, largest E⁻ for mii, smallest E⁺ + E⁻ for none, largest min(E⁺, E⁻) for tense ones)."""
    e = e_plus / max(float(np.mean(e_plus)), 1e-12)
    i = e_minus / max(float(np.mean(e_minus)), 1e-12)
    keys = {"mei": -e, "mii": -i, "none": e + i, "spatial": -np.minimum(e, i), "channel": -np.minimum(e, i)}
    chosen = {}
    for name in CATEGORIES:
        rows = np.flatnonzero(categories == name)
        chosen[name] = rows[np.argsort(keys[name][rows], kind="stable")][:n]
    return chosen
