"""The registry of dictionary-learning methods: name -> `Method`, filled by a decorator.

A method learns ``Fitted`` from (n, C) float32 vectors and turns vectors into codes with it; the
reconstruction of codes is always ``codes @ components + mean`` (`reconstruct`), so the metrics,
the energy shares and the file are the same for every method. What a method needs beyond that to
encode (an SAE's encoder weights, a threshold) lives in ``Fitted.state`` and is saved with the
dictionary; its options (``top_k``, ``epochs``...) come from ``FitOptions``, saved in the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import PhospheneError


@dataclass
class Fitted:
    """What a method learned: ``components`` (K, C) float32 (x̂ = codes @ components + mean),
    ``mean`` (C,) float32 and ``state``, the method's other tensors needed to encode."""

    components: np.ndarray
    mean: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FitOptions:
    """Options of the iterative methods: ``seed``; for the sparse autoencoders ``epochs``, ``top_k``
    (non-zero codes per vector), ``lr`` (Adam), ``fit_batch`` (vectors per step) and
    ``sparsity_penalty`` (JumpReLU's L0 weight); ``max_iter`` for the NMF solvers."""

    seed: int = 0
    epochs: int = 20
    top_k: int = 4
    lr: float = 1e-3
    fit_batch: int = 1024
    sparsity_penalty: float = 0.01
    max_iter: int = 400

    def describe(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict) -> FitOptions:
        """The options in a dictionary file's settings (defaults for those it lacks)."""
        return cls(**{name: settings[name] for name in cls.__dataclass_fields__ if name in settings})


@dataclass(frozen=True)
class Method:
    """A named method: ``fit(vectors, k, options) -> Fitted`` and ``encode(fitted, options, vectors)
    -> codes`` (n, K); ``library`` names what it calls (for the messages and the docs)."""

    name: str
    library: str
    fit: Callable[[np.ndarray, int, FitOptions], Fitted]
    encode: Callable[[Fitted, FitOptions, np.ndarray], np.ndarray]


_METHODS: dict[str, Method] = {}


def register(name: str, library: str, encode: Callable[[Fitted, FitOptions, np.ndarray], np.ndarray]
             ) -> Callable[[Callable[[np.ndarray, int, FitOptions], Fitted]], Callable]:
    """Decorator on a fit function: make it the method ``name`` with its ``encode``."""
    def add(fit: Callable[[np.ndarray, int, FitOptions], Fitted]) -> Callable:
        _METHODS[name] = Method(name, library, fit, encode)
        return fit
    return add


def names() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(_METHODS)


def get(name: str) -> Method:
    """The method called ``name``; a `PhospheneError` naming the choices otherwise."""
    if name not in _METHODS:
        raise PhospheneError(f"unknown method {name!r}; use one of {', '.join(_METHODS)}")
    return _METHODS[name]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)


def reconstruct(fitted: Fitted, codes: np.ndarray) -> np.ndarray:
    """Vectors (n, C) from codes (n, K): ``codes @ components + mean``."""
    return codes @ fitted.components + fitted.mean
