"""``torch.compile`` for the hot loop, falling back to eager execution with one warning.

``torch.compile`` fails late (at the first call: no C++ compiler, an unsupported op, a backend
error), so `compiled` wraps the function: the first call that fails with anything other than the
exceptions phosphene itself uses for control flow warns once and runs the function eagerly from
then on. Results are the same either way; compiling only changes speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from .tap import StopForward

PASS_THROUGH: tuple[type[BaseException], ...] = (StopForward, KeyboardInterrupt)


class CompiledFunction:
    """``fn`` under ``torch.compile``; eager ``fn`` (with one warning) once compiling has failed."""

    def __init__(self, fn: Callable[..., Any], **options: Any):
        self.fn = fn
        self.failed: str | None = None
        try:
            self.compiled: Callable[..., Any] = torch.compile(fn, **options)
        except Exception as exc:  # e.g. a platform where torch.compile is not supported
            self._fail(exc)
            self.compiled = fn

    def _fail(self, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        self.failed = f"{type(exc).__name__}: {first}"
        warnings.warn(f"torch.compile failed ({self.failed}); running eagerly", RuntimeWarning,
                      stacklevel=3)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.fn(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except PASS_THROUGH:
            raise
        except Exception as exc:
            self._fail(exc)
            return self.fn(*args, **kwargs)


def compiled(fn: Callable[..., Any], **options: Any) -> CompiledFunction:
    """``torch.compile(fn, **options)`` that runs ``fn`` eagerly, after one warning, if it fails."""
    return CompiledFunction(fn, **options)
