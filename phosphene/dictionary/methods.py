"""The dictionary-learning methods, each scikit-learn's, and how each one encodes and reconstructs.

- ``kmeans``: `sklearn.cluster.MiniBatchKMeans` on the unit-normalized vectors (spherical k-means:
  clusters of directions); atoms are the unit-norm cluster centres. A vector's code is its
  projection on its nearest atom (by cosine), zero elsewhere; the reconstruction is that one term.
- ``pca``: `sklearn.decomposition.PCA`; atoms are the principal axes (unit norm), codes are the
  projections of the centred vector, the reconstruction adds the mean back. A baseline: all
  components reconstruct the layer exactly.
- ``nmf``: `sklearn.decomposition.NMF` of the positive part of the vectors (NMF needs non-negative
  data: on a layer with negative values the negative part is left out, and R² counts it as
  unexplained); codes are the non-negative coefficients for the fixed dictionary.

Every method gives ``components`` (K, C), the method's own dictionary (NMF's rows carry their scale),
and the unit-norm directions of those rows are the ``atoms`` that act as units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PhospheneError, install_hint

METHODS = ("kmeans", "pca", "nmf")
NMF_MAX_ITER = 400


@dataclass
class Fitted:
    """What a method learned: ``components`` (K, C) float32 and ``mean`` (C,) float32."""

    components: np.ndarray
    mean: np.ndarray


def require_sklearn() -> None:
    """A one-line `PhospheneError` when scikit-learn (the dictionary extra) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise PhospheneError(f"dictionaries need scikit-learn: {install_hint('dictionary')}") from None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1)).astype(np.float32)


def check_size(method: str, k: int, vectors: np.ndarray) -> None:
    """`PhospheneError` when ``k`` atoms cannot be learned from ``vectors`` (n, C)."""
    if method not in METHODS:
        raise PhospheneError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    n, c = vectors.shape
    if k < 1:
        raise PhospheneError("--atoms must be at least 1")
    if k > n:
        raise PhospheneError(f"{k} atoms need at least {k} activation vectors, the sample has {n}; "
                             "use more images, a larger --per-image or fewer --atoms")
    if method == "pca" and k > c:
        raise PhospheneError(f"PCA gives at most {c} components for a layer of {c} channels, not {k}")


def fit(method: str, vectors: np.ndarray, k: int, seed: int = 0) -> Fitted:
    """Learn ``k`` atoms from ``vectors`` (n, C) float32 with ``method``."""
    check_size(method, k, vectors)
    require_sklearn()
    mean = np.zeros(vectors.shape[1], dtype=np.float32)
    if method == "kmeans":
        from sklearn.cluster import MiniBatchKMeans

        directions = unit_rows(vectors[np.linalg.norm(vectors, axis=1) > 0])
        if len(directions) < k:
            raise PhospheneError(f"{k} atoms need {k} non-zero activation vectors, the sample has "
                                 f"{len(directions)}")
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=2048, n_init=3)
        components = unit_rows(km.fit(directions).cluster_centers_)
    elif method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=k, random_state=seed).fit(vectors)
        components, mean = pca.components_.astype(np.float32), pca.mean_.astype(np.float32)
    else:
        from sklearn.decomposition import NMF

        nmf = NMF(n_components=k, init="nndsvda", max_iter=NMF_MAX_ITER, random_state=seed)
        nmf.fit(np.maximum(vectors, 0))
        components = nmf.components_.astype(np.float32)
    return Fitted(np.ascontiguousarray(components), mean)


def encode(method: str, components: np.ndarray, mean: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Codes (n, K) of ``vectors`` (n, C) for the dictionary (see the module docstring)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if method == "pca":
        return (vectors - mean) @ components.T
    if method == "kmeans":
        projections = vectors @ components.T
        nearest = projections.argmax(1)
        codes = np.zeros_like(projections)
        rows = np.arange(len(vectors))
        codes[rows, nearest] = projections[rows, nearest]
        return codes
    require_sklearn()
    from sklearn.decomposition import non_negative_factorization

    codes, _, _ = non_negative_factorization(np.maximum(vectors, 0), H=components, update_H=False,
                                             n_components=len(components), max_iter=NMF_MAX_ITER,
                                             solver="cd")
    return codes.astype(np.float32)


def reconstruct(method: str, components: np.ndarray, mean: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Vectors (n, C) from codes (n, K)."""
    return codes @ components + (mean if method == "pca" else 0)


def fit_metrics(method: str, components: np.ndarray, mean: np.ndarray, fit_vectors: np.ndarray,
                held_out: np.ndarray) -> tuple[dict, np.ndarray]:
    """({r2_held_out, r2_fit, sparsity, l0, dead_atoms}, energy share per atom (K,)).

    R² = 1 - |x - x̂|² / |x - mean(x)|² summed over the vectors; sparsity is the share of zero codes
    and l0 the mean number of non-zero codes per vector (on the held-out vectors); an atom is dead
    when its code is zero for every vector of the fit sample; an atom's energy is its share of
    sum |c_k|² |component_k|² over the fit sample."""

    def r2(vectors: np.ndarray, codes: np.ndarray) -> float:
        error = np.square(vectors - reconstruct(method, components, mean, codes)).sum()
        total = np.square(vectors - vectors.mean(0)).sum()
        return float(1 - error / total) if total > 0 else float("nan")

    fit_codes = encode(method, components, mean, fit_vectors)
    held_codes = encode(method, components, mean, held_out) if len(held_out) else fit_codes
    nonzero = np.abs(held_codes) > 0
    energy = np.square(fit_codes).sum(0) * np.square(components).sum(1)
    metrics = {
        "r2_held_out": r2(held_out, held_codes) if len(held_out) else float("nan"),
        "r2_fit": r2(fit_vectors, fit_codes),
        "sparsity": float(1 - nonzero.mean()),
        "l0": float(nonzero.sum(1).mean()),
        "dead_atoms": int((np.abs(fit_codes).max(0) == 0).sum()),
        "n_fit": len(fit_vectors), "n_held_out": len(held_out),
    }
    return metrics, (energy / max(energy.sum(), 1e-30)).astype(np.float32)
