"""Parameterizations built from others: a masked blend into the seeds, and a concatenation.

- `ConfinedImage`: wraps any parameterization; with a spatial mask m it returns ``x0 + m * (x - x0)``,
  so the image changes only where m > 0. It keeps its last output in ``.last`` (for gradients w.r.t. x).
- `ConcatImages`: one batch from several parameterizations (e.g. seeded and random-phase images).
"""

from __future__ import annotations

import torch
from torch import nn


class ConcatImages(nn.Module):
    """Concatenate the batches of several parameterizations into one."""

    def __init__(self, *params: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(params)

    def forward(self) -> torch.Tensor:
        return torch.cat([part() for part in self.parts])


class ConfinedImage(nn.Module):
    """``inner()`` blended into the seeds by a spatial mask: x0 + m (x - x0); m (N, 1, H, W) in [0, 1].

    Without a mask it returns ``inner()`` unchanged. ``repeat`` > 1 repeats each seed and mask that
    many times (adjacent), for an inner parameterization over several copies of each seed.
    """

    def __init__(self, inner: nn.Module, seeds: torch.Tensor, mask: torch.Tensor | None = None,
                 repeat: int = 1):
        super().__init__()
        self.inner = inner
        self.register_buffer("seeds", seeds.float().repeat_interleave(repeat, 0))
        self.register_buffer("mask", None if mask is None else mask.float().repeat_interleave(repeat, 0))
        self.last: torch.Tensor | None = None

    def forward(self) -> torch.Tensor:
        x = self.inner()
        if self.mask is not None:
            x = self.seeds + self.mask * (x - self.seeds)
        self.last = x
        return x
