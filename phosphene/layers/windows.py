"""Layers whose first dimension holds windows or patches of each image, not images.

Window attention (Swin, MaxViT) and MobileViT's transformers fold parts of every image into the batch
dimension: such a layer's output is (B*R, ...) with R rows per image, each row holding T = s0*s1
tokens of one image. A `Partition` says which pixels of the image's (H, W) map a row holds:

- ``window`` (Swin's and MaxViT's ``window_partition``): row r is the r-th s0 x s1 window of the map,
  windows and the tokens inside them row-major;
- ``grid`` (MaxViT's ``grid_partition``, MobileViT's unfolding): the map is cut into s0 x s1 cells;
  token (a, b) is cell (a, b) and row r the r-th offset inside a cell, so a row is a strided grid.

``shift`` is the cyclic shift applied before partitioning (Swin's shifted windows: the map is rolled
by -shift) and ``padded`` the map's size after padding it to a multiple of the window. A row's
``fmt`` is ``NLC`` (B*R, T, C), ``NHWC`` (B*R, s0, s1, C), ``NCHW`` (B*R, C, s0, s1) or ``NC``
(B*R, C): one token per row, as LeViT's BatchNorm1d sees its tokens (windows of 1x1).

`Partition.to_canonical` merges the rows into the (B, C, H, W) map (undoing padding and shift);
`Partition.from_canonical` partitions a map again, so the network can run on from the view. `infer`
finds the partition of a folded tensor by trying the sizes the modules declare (`hints`) and the
factorizations of its shape against per-image maps computed just before it: a partition is accepted
only when merging the folded tensor gives one of those maps back exactly, or that map resized
(bilinear) to a multiple of the window, as MobileViT does when its map does not divide into patches
(the view is then the resized map the transformer sees).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

FORMATS = ("NLC", "NHWC", "NCHW", "NC")
SIZE_ATTRS = ("window_size", "partition_size", "grid_size", "patch_size")
SHIFT_ATTRS = ("shift_size",)


@dataclass(frozen=True)
class Partition:
    """How an image's (H, W) map is cut into rows of s0 x s1 tokens (see the module docstring)."""

    kind: str  # "window" or "grid"
    size: tuple[int, int]
    hw: tuple[int, int]
    padded: tuple[int, int]
    shift: tuple[int, int] = (0, 0)

    @property
    def rows(self) -> int:
        """Rows per image."""
        return (self.padded[0] // self.size[0]) * (self.padded[1] // self.size[1])

    @property
    def tokens(self) -> int:
        return self.size[0] * self.size[1]

    def __str__(self) -> str:
        shift = f", shift {self.shift[0]},{self.shift[1]}" if any(self.shift) else ""
        what = "windows" if self.kind == "window" else "strided grids"
        return f"{self.rows} {what} of {self.size[0]}x{self.size[1]}{shift}"

    def fits(self, shape: Sequence[int], fmt: str) -> bool:
        """True when a per-image output shape (R, ...) is rows of this partition in ``fmt``."""
        if shape[0] != self.rows:
            return False
        if fmt == "NLC":
            return len(shape) == 3 and shape[1] == self.tokens
        if fmt == "NHWC":
            return len(shape) == 4 and tuple(shape[1:3]) == self.size
        if fmt == "NC":
            return len(shape) == 2 and self.size == (1, 1)
        return fmt == "NCHW" and len(shape) == 4 and tuple(shape[2:4]) == self.size

    def canonical_shape(self, shape: Sequence[int], fmt: str) -> tuple[int, ...]:
        """(B, C, H, W) of the map merged from rows of ``shape`` (B*R, ...)."""
        channels = shape[1] if fmt == "NCHW" else shape[-1]
        return (shape[0] // self.rows, channels, *self.hw)

    def _to_hwc(self, rows: torch.Tensor, fmt: str) -> torch.Tensor:
        if fmt == "NLC":
            return rows.unflatten(1, self.size)
        if fmt == "NC":
            return rows[:, None, None]
        return rows.permute(0, 2, 3, 1) if fmt == "NCHW" else rows

    def _from_hwc(self, rows: torch.Tensor, fmt: str) -> torch.Tensor:
        if fmt == "NLC":
            return rows.flatten(1, 2)
        if fmt == "NC":
            return rows[:, 0, 0]
        return rows.permute(0, 3, 1, 2) if fmt == "NCHW" else rows

    def merge(self, raw: torch.Tensor, fmt: str) -> torch.Tensor:
        """Rows (B*R, ...) -> the padded, still shifted map (B, Hp, Wp, C)."""
        x = self._to_hwc(raw, fmt)
        (s0, s1), (hp, wp), c = self.size, self.padded, x.shape[-1]
        x = x.reshape(-1, hp // s0, wp // s1, s0, s1, c)
        x = x.permute(0, 1, 3, 2, 4, 5) if self.kind == "window" else x.permute(0, 3, 1, 4, 2, 5)
        return x.reshape(-1, hp, wp, c)

    def split(self, full: torch.Tensor, fmt: str) -> torch.Tensor:
        """The padded, shifted map (B, Hp, Wp, C) -> rows (B*R, ...) in ``fmt``."""
        (s0, s1), (hp, wp), c = self.size, self.padded, full.shape[-1]
        if self.kind == "window":
            x = full.reshape(-1, hp // s0, s0, wp // s1, s1, c).permute(0, 1, 3, 2, 4, 5)
        else:
            x = full.reshape(-1, s0, hp // s0, s1, wp // s1, c).permute(0, 2, 4, 1, 3, 5)
        return self._from_hwc(x.reshape(-1, s0, s1, c), fmt)

    def to_canonical(self, raw: torch.Tensor, fmt: str) -> torch.Tensor:
        """Rows (B*R, ...) -> the image's map (B, C, H, W)."""
        h, w = self.hw
        x = self.merge(raw, fmt)[:, :h, :w]
        if any(self.shift):
            x = torch.roll(x, shifts=self.shift, dims=(1, 2))
        return x.permute(0, 3, 1, 2)

    def from_canonical(self, canon: torch.Tensor, raw: torch.Tensor, fmt: str) -> torch.Tensor:
        """Rows equal to ``raw`` computed from its map ``canon`` (B, C, H, W); the padding (which the
        network crops away) is taken from ``raw``."""
        (h, w), (hp, wp) = self.hw, self.padded
        x = canon.permute(0, 2, 3, 1)
        if any(self.shift):
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
        if (hp, wp) != (h, w):
            full = self.merge(raw, fmt)
            if wp > w:
                x = torch.cat([x, full[:, :h, w:]], 2)
            if hp > h:
                x = torch.cat([x, full[:, h:]], 1)
        return self.split(x, fmt)


def _pairs(value) -> list[tuple[int, int]]:
    if isinstance(value, int) and value > 0:
        return [(value, value)]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [tuple(value)]
    return []


def hints(modules: Iterable[nn.Module]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(sizes, shifts) the modules declare (``window_size``, ``partition_size``, ``grid_size``,
    ``patch_size``; ``shift_size``), for a module and its ancestors, nearest first."""
    sizes, shifts = [], []
    for module in modules:
        for attr in SIZE_ATTRS:
            sizes += [p for p in _pairs(getattr(module, attr, None)) if p not in sizes]
        for attr in SHIFT_ATTRS:
            shifts += [p for p in _pairs(getattr(module, attr, None)) if p not in shifts]
    return sizes, shifts


def _factor_pairs(n: int) -> list[tuple[int, int]]:
    return [(d, n // d) for d in range(1, n + 1) if n % d == 0]


def _candidates(tokens: int, rows: int, hw: tuple[int, int], declared: list[tuple[int, int]],
                shifts: list[tuple[int, int]]) -> list[Partition]:
    """Partitions of an (H, W) map into ``rows`` rows of ``tokens`` tokens, declared sizes first."""
    sizes = [s for s in declared if s[0] * s[1] == tokens]
    sizes += [s for s in _factor_pairs(tokens) if s not in sizes]
    found = []
    for kind in ("window", "grid"):
        for s0, s1 in sizes:
            padded = (math.ceil(hw[0] / s0) * s0, math.ceil(hw[1] / s1) * s1)
            if (padded[0] // s0) * (padded[1] // s1) != rows:
                continue
            moves = [(0, 0)] if kind == "grid" else [(0, 0), *shifts, (s0 // 2, s1 // 2)]
            found += [Partition(kind, (s0, s1), hw, padded, m) for m in dict.fromkeys(moves)]
    return found


def row_formats(shape: Sequence[int]) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(fmt, channels, row size or None) readings of a folded tensor shape (B*R, ...)."""
    if len(shape) == 2:
        return [("NC", shape[1], (1, 1))]
    if len(shape) == 3:
        return [("NLC", shape[2], None)]
    if len(shape) == 4:
        return [("NHWC", shape[3], tuple(shape[1:3])), ("NCHW", shape[1], tuple(shape[2:4]))]
    return []


def infer(folded: torch.Tensor, images: int, references: Sequence[torch.Tensor],
          declared: list[tuple[int, int]], shifts: list[tuple[int, int]]
          ) -> tuple[Partition, str] | None:
    """(partition, fmt) under which ``folded`` (images*R, ...) merges into one of ``references``
    (per-image maps (images, C, H, W)), or None (see the module docstring)."""
    rows = folded.shape[0] // images
    for fmt, channels, size in row_formats(folded.shape):
        tokens = folded.shape[1] if fmt == "NLC" else size[0] * size[1]
        for ref in references:
            if ref.shape[1] != channels or ref.shape[0] != images:
                continue
            sized = [size] if size is not None else declared
            for part in _candidates(tokens, rows, tuple(ref.shape[-2:]), sized, shifts):
                if size is not None and part.size != size:
                    continue
                target = ref
                if part.padded != part.hw:
                    if _matches(part, folded, fmt, ref):
                        return part, fmt
                    target = F.interpolate(ref, size=part.padded, mode="bilinear", align_corners=False)
                    part = Partition(part.kind, part.size, part.padded, part.padded)
                if _matches(part, folded, fmt, target):
                    return part, fmt
    return None


def _matches(part: Partition, folded: torch.Tensor, fmt: str, ref: torch.Tensor) -> bool:
    merged = part.to_canonical(folded, fmt)
    return merged.shape == ref.shape and torch.allclose(merged, ref, rtol=1e-5, atol=1e-6)
