"""Keywords renamed by issue 9, accepted for one more release with a `DeprecationWarning`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def old_seed_keywords(image: str) -> Callable[[F], F]:
    """Map the old names onto the new ones: ``seed=<image tensor>`` is now ``<image>=`` and
    ``seed_rng=`` is now ``seed=`` (``seed`` is an RNG seed everywhere)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if isinstance(kwargs.get("seed"), torch.Tensor):
                warnings.warn(f"{fn.__name__}(seed=<images>) is deprecated: pass {image}=; seed= is now the "
                              "RNG seed", DeprecationWarning, stacklevel=2)
                kwargs[image] = kwargs.pop("seed")
            if "seed_rng" in kwargs:
                warnings.warn(f"{fn.__name__}(seed_rng=) is deprecated: pass seed=", DeprecationWarning,
                              stacklevel=2)
                kwargs["seed"] = kwargs.pop("seed_rng")
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
