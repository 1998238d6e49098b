"""A polysemanticity score per unit: how many facets its top exemplars fall into.

For a unit and its top exemplars (a mining run's top-k, or a stimulus set's natural exemplars):

1. each exemplar's activation vector at the unit's layer, pooled over positions with the unit's own
   positive activation map as the weight (`layers.pooling.pooled_vectors`: what is where the unit fires),
   scaled to unit length (cosine geometry, as `phosphene.facets`);
2. k-means (scikit-learn, fixed seed) for every number of facets n = 2 .. ``max_facets`` (at most
   exemplars - 1), each scored by its silhouette (Rousseeuw 1987: how much closer an exemplar is to
   its own facet than to the next one; in [-1, 1]) *minus* the mean silhouette of the same
   clustering on ``null_draws`` samples of one Gaussian with the exemplars' mean and covariance
   (each null exemplar the mean plus a standard-normal mix of the centred exemplars / sqrt(n - 1),
   as SigClust's null of a single cluster, Liu et al. 2008): k-means splits even one Gaussian cloud,
   with a silhouette of 0.2-0.4 at ten exemplars (more when it is elongated), so only the excess
   over that null counts;
3. the unit's **facets** n* is the n with the largest excess, or 1 when that excess is below
   ``min_excess`` (default 0.05: no split is clearly better than one facet);
4. its **polysemanticity** is the effective number of facets, exp(entropy of the facet sizes) at n*:
   1 for one facet, n for n equally large facets, less when one facet holds most exemplars.

The score is continuous (so units rarely tie) and reads as "how many kinds of image excite the
unit". Also kept: the excess silhouette of n* and the **dispersion**, 1 - |mean of the unit-length vectors|
(0 when every exemplar points the same way), which needs no clustering.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .errors import PhospheneError, install_hint
from .layers.pooling import pooled_vectors

MAX_FACETS = 5
MIN_EXCESS = 0.05
NULL_DRAWS = 4
MIN_EXEMPLARS = 4


@dataclass(frozen=True)
class Polysemanticity:
    """One unit's score (module docstring): ``score`` the effective number of facets, ``facets`` n*,
    ``silhouette`` the best excess silhouette over the null (NaN when no split was possible),
    ``dispersion``, ``exemplars`` the number of exemplars used."""

    score: float
    facets: int
    silhouette: float
    dispersion: float
    exemplars: int

    def to_dict(self) -> dict:
        """As a dict, NaN as None (JSON)."""
        return {k: None if isinstance(v, float) and v != v else v for k, v in asdict(self).items()}


def effective_count(labels: np.ndarray) -> float:
    """exp(entropy) of the label frequencies: the effective number of groups."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(math.exp(-(p * np.log(p)).sum()))


def _silhouette(vectors: np.ndarray, n: int, seed: int) -> float:
    """Silhouette of the k-means split of ``vectors`` (unit rows) into ``n``; NaN if degenerate."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    labels = KMeans(n_clusters=n, n_init=4, random_state=seed).fit_predict(vectors)
    return float(silhouette_score(vectors, labels)) if len(np.unique(labels)) > 1 else float("nan")


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def score_vectors(vectors: np.ndarray | torch.Tensor, max_facets: int = MAX_FACETS,
                  min_excess: float = MIN_EXCESS, null_draws: int = NULL_DRAWS, seed: int = 0
                  ) -> Polysemanticity:
    """The score of one unit from its exemplars' pooled activation vectors (n, C)."""
    try:
        from sklearn.cluster import KMeans
    except ImportError as error:
        raise PhospheneError(f"the polysemanticity score needs scikit-learn: {install_hint('dictionary')}"
                             ) from error
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < MIN_EXEMPLARS:
        raise PhospheneError(f"the polysemanticity score needs at least {MIN_EXEMPLARS} exemplar vectors, "
                             f"got {len(vectors)}")
    if max_facets < 2 or null_draws < 1:
        raise PhospheneError("max facets must be at least 2 and null draws at least 1")
    unit = _unit_rows(vectors)
    dispersion = float(1 - np.linalg.norm(unit.mean(0)))
    rng = np.random.default_rng(seed)
    centred = vectors - vectors.mean(0)
    scale = 1 / math.sqrt(len(vectors) - 1)
    nulls = [_unit_rows(vectors.mean(0) + scale * rng.standard_normal((len(vectors), len(vectors))) @ centred)
             for _ in range(null_draws)]
    best, best_n = float("nan"), 1
    distinct = len(np.unique(unit.round(9), axis=0))
    for n in range(2, min(max_facets, len(unit) - 1, distinct) + 1):
        null = np.nanmean([_silhouette(v, n, seed) for v in nulls])
        excess = _silhouette(unit, n, seed) - (null if null == null else 0.0)
        if excess == excess and not excess <= best:  # the first, or a better one (NaN-safe)
            best, best_n = excess, n
    labels = np.zeros(len(unit), dtype=np.int64)
    if best >= min_excess:
        labels = KMeans(n_clusters=best_n, n_init=4, random_state=seed).fit_predict(unit)
    return Polysemanticity(effective_count(labels), int(len(np.unique(labels))), best, dispersion, len(unit))


def score_unit(model: nn.Module, images: torch.Tensor, layer: str, unit: int, max_facets: int = MAX_FACETS,
               min_excess: float = MIN_EXCESS, seed: int = 0) -> Polysemanticity:
    """The score of ``layer:unit`` from its top exemplars ``images`` (N, 3, H, W) in [0, 1]."""
    vectors = pooled_vectors(model, images, layer, unit, layer)
    return score_vectors(vectors.numpy(), max_facets, min_excess, seed=seed)
