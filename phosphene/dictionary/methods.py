"""The dictionary-learning methods, by name, and what every method shares: codes, reconstructions,
metrics.

scikit-learn's ``kmeans``, ``pca``, ``nmf`` (`phosphene.dictionary.classic`) and overcomplete's
sparse autoencoders ``topk``, ``batchtopk``, ``jumprelu`` and ``seminmf``, ``convexnmf``
(`phosphene.dictionary.overcomplete_methods`), all in one registry
(`phosphene.dictionary.registry`). Every method gives ``components`` (K, C), the method's own
dictionary (NMF's rows carry their scale), with x̂ = codes @ components + mean; the unit-norm
directions of those rows are the ``atoms`` that act as units.
"""

from __future__ import annotations

import numpy as np

from ..errors import PhospheneError
from . import classic, overcomplete_methods  # noqa: F401  (they register the methods)
from .registry import FitOptions, Fitted, get, names, reconstruct, unit_rows

METHODS = names()
SAES = overcomplete_methods.SAES

__all__ = ["METHODS", "SAES", "Fitted", "FitOptions", "check_size", "encode", "fit", "fit_metrics", "get",
           "reconstruct", "unit_rows"]


def check_size(method: str, k: int, vectors: np.ndarray) -> None:
    """`PhospheneError` when ``k`` atoms cannot be learned from ``vectors`` (n, C)."""
    get(method)
    n, c = vectors.shape
    if k < 1:
        raise PhospheneError("--atoms must be at least 1")
    if k > n:
        raise PhospheneError(f"{k} atoms need at least {k} activation vectors, the sample has {n}; "
                             "use more images, a larger --per-image or fewer --atoms")
    if method == "pca" and k > c:
        raise PhospheneError(f"PCA gives at most {c} components for a layer of {c} channels, not {k}")


def fit(method: str, vectors: np.ndarray, k: int, options: FitOptions | None = None) -> Fitted:
    """Learn ``k`` atoms from ``vectors`` (n, C) float32 with ``method``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    check_size(method, k, vectors)
    fitted = get(method).fit(vectors, k, options or FitOptions())
    fitted.components = np.ascontiguousarray(fitted.components, dtype=np.float32)
    return fitted


def encode(method: str, fitted: Fitted, vectors: np.ndarray, options: FitOptions | None = None) -> np.ndarray:
    """Codes (n, K) float32 of ``vectors`` (n, C) for the dictionary (see each method's module)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return get(method).encode(fitted, options or FitOptions(), vectors).astype(np.float32, copy=False)


def fit_metrics(method: str, fitted: Fitted, fit_vectors: np.ndarray, held_out: np.ndarray,
                options: FitOptions | None = None) -> tuple[dict, np.ndarray]:
    """({r2_held_out, r2_fit, sparsity, l0, dead_atoms}, energy share per atom (K,)).

    R² = 1 - |x - x̂|² / |x - mean(x)|² summed over the vectors; sparsity is the share of zero codes
    and l0 the mean number of non-zero codes per vector (on the held-out vectors); an atom is dead
    when its code is zero for every vector of the fit sample; an atom's energy is its share of
    sum |c_k|² |component_k|² over the fit sample."""

    def r2(vectors: np.ndarray, codes: np.ndarray) -> float:
        error = np.square(vectors - reconstruct(fitted, codes)).sum()
        total = np.square(vectors - vectors.mean(0)).sum()
        return float(1 - error / total) if total > 0 else float("nan")

    fit_codes = encode(method, fitted, fit_vectors, options)
    held_codes = encode(method, fitted, held_out, options) if len(held_out) else fit_codes
    nonzero = np.abs(held_codes) > 0
    energy = np.square(fit_codes).sum(0) * np.square(fitted.components).sum(1)
    metrics = {
        "r2_held_out": r2(held_out, held_codes) if len(held_out) else float("nan"),
        "r2_fit": r2(fit_vectors, fit_codes),
        "sparsity": float(1 - nonzero.mean()),
        "l0": float(nonzero.sum(1).mean()),
        "dead_atoms": int((np.abs(fit_codes).max(0) == 0).sum()),
        "n_fit": len(fit_vectors), "n_held_out": len(held_out),
    }
    return metrics, (energy / max(energy.sum(), 1e-30)).astype(np.float32)
