"""The scikit-learn methods: k-means, PCA, NMF.

- ``kmeans``: `sklearn.cluster.MiniBatchKMeans` on the unit-normalized vectors (spherical k-means:
  clusters of directions); atoms are the unit-norm cluster centres. A vector's code is its
  projection on its nearest atom (by cosine), zero elsewhere; the reconstruction is that one term.
- ``pca``: `sklearn.decomposition.PCA`; atoms are the principal axes (unit norm), codes are the
  projections of the centred vector, the reconstruction adds the mean back. A baseline: all
  components reconstruct the layer exactly.
- ``nmf``: `sklearn.decomposition.NMF` of the positive part of the vectors (NMF needs non-negative
  data: on a layer with negative values the negative part is left out, and R² counts it as
  unexplained); codes are the non-negative coefficients for the fixed dictionary.
"""

from __future__ import annotations

import numpy as np

from ..errors import PhospheneError, install_hint
from .registry import FitOptions, Fitted, register, unit_rows


def require_sklearn() -> None:
    """A one-line `PhospheneError` when scikit-learn (the dictionary extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise PhospheneError(f"dictionaries need scikit-learn: {install_hint('dictionary')}") from None


def _zero_mean(vectors: np.ndarray) -> np.ndarray:
    return np.zeros(vectors.shape[1], dtype=np.float32)


def encode_nearest(fitted: Fitted, options: FitOptions, vectors: np.ndarray) -> np.ndarray:
    """k-means codes: the projection on the nearest atom (by cosine), zero for the others."""
    projections = vectors @ fitted.components.T
    nearest = projections.argmax(1)
    codes = np.zeros_like(projections)
    rows = np.arange(len(vectors))
    codes[rows, nearest] = projections[rows, nearest]
    return codes


def encode_projection(fitted: Fitted, options: FitOptions, vectors: np.ndarray) -> np.ndarray:
    """PCA codes: the projections of the centred vectors."""
    return (vectors - fitted.mean) @ fitted.components.T


def encode_nmf(fitted: Fitted, options: FitOptions, vectors: np.ndarray) -> np.ndarray:
    """NMF codes: non-negative coefficients of the positive part for the fixed dictionary."""
    require_sklearn()
    from sklearn.decomposition import non_negative_factorization

    codes, _, _ = non_negative_factorization(np.maximum(vectors, 0), H=fitted.components, update_H=False,
                                             n_components=len(fitted.components),
                                             max_iter=options.max_iter, solver="cd")
    return codes.astype(np.float32)


@register("kmeans", "scikit-learn", encode_nearest)
def fit_kmeans(vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    require_sklearn()
    from sklearn.cluster import MiniBatchKMeans

    norms = np.linalg.norm(vectors, axis=1)  # once: the zero-row filter and the scaling share it
    keep = norms > 0
    # one new float32 array (vectors and norms are float32), no copy for the filter when none is zero
    directions = vectors / norms[:, None] if keep.all() else vectors[keep] / norms[keep, None]
    if len(directions) < k:
        raise PhospheneError(f"{k} atoms need {k} non-zero activation vectors, the sample has "
                             f"{len(directions)}")
    km = MiniBatchKMeans(n_clusters=k, random_state=options.seed, batch_size=2048, n_init=3)
    return Fitted(unit_rows(km.fit(directions).cluster_centers_), _zero_mean(vectors))


@register("pca", "scikit-learn", encode_projection)
def fit_pca(vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    require_sklearn()
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, random_state=options.seed).fit(vectors)
    return Fitted(pca.components_.astype(np.float32), pca.mean_.astype(np.float32))


@register("nmf", "scikit-learn", encode_nmf)
def fit_nmf(vectors: np.ndarray, k: int, options: FitOptions) -> Fitted:
    require_sklearn()
    from sklearn.decomposition import NMF

    nmf = NMF(n_components=k, init="nndsvda", max_iter=options.max_iter, random_state=options.seed)
    nmf.fit(np.maximum(vectors, 0))
    return Fitted(nmf.components_.astype(np.float32), _zero_mean(vectors))
