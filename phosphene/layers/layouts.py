"""Layer layouts: where the features are in a layer's output, and its canonical (B, C, H, W) view.

Every consumer reads activations as (B, C, H, W) with C = features (units). A `Layout` says how a
layer's raw output maps to that view:

- ``NCHW`` (convolutions): already canonical.
- ``NHWC`` (ConvNeXt-style LayerNorm / Linear / activations over the last dimension): permuted.
- ``NLC`` (transformer tokens): ``prefix`` leading tokens (class, distillation, register tokens)
  and a ``grid`` (gh, gw) of patch tokens; the canonical view is the patch grid (B, C, gh, gw),
  the first prefix token is the layer ``NAME#cls`` (B, C, 1, 1).
- ``NC`` (linear layers, (B, K)): (B, K, 1, 1).
- ``NCL`` (1-D convolutions, (B, C, L)): (B, C, 1, L).
- any of ``NLC``, ``NHWC``, ``NCHW`` with a ``partition`` (window attention, MobileViT): the first
  dimension holds R windows or patches per image (`phosphene.layers.windows`); the canonical view
  merges them into the image's (B, C, H, W) map.

`detect` picks the layout from the module and the recorded forward pass; `parse_layout` reads a
user override (``"NHWC"``, ``"NLC"``, ``"NLC:1"`` with the number of prefix tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import PhospheneError
from .windows import Partition

KINDS = ("NCHW", "NHWC", "NLC", "NC", "NCL")
MAX_PREFIX = 8  # prefix tokens tried when the model does not say how many it has
_RANK = {"NCHW": 4, "NHWC": 4, "NLC": 3, "NCL": 3, "NC": 2}

_CHANNELS_FIRST_1D = (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.MaxPool1d,
                      nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
_CHANNELS_FIRST_2D = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm,
                      nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
                      nn.LocalResponseNorm)


@dataclass(frozen=True)
class Layout:
    """How a layer's output holds its features (see the module docstring)."""

    kind: str
    prefix: int = 0
    grid: tuple[int, int] | None = None
    partition: Partition | None = None

    def __str__(self) -> str:
        if self.partition is not None:
            h, w = self.partition.hw
            return f"{self.kind}({self.partition} -> {h}x{w})"
        if self.kind == "NLC" and self.grid is not None:
            extra = f", {self.prefix} prefix" if self.prefix else ""
            return f"NLC({self.grid[0]}x{self.grid[1]} patches{extra})"
        return self.kind

    @property
    def identity(self) -> bool:
        """True when the raw output is already the canonical view."""
        return self.kind == "NCHW" and self.partition is None

    def canonical_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """(B, C, H, W) of the canonical view of a raw output of ``shape``."""
        if self.partition is not None:
            return self.partition.canonical_shape(shape, self.kind)
        b = shape[0]
        if self.kind == "NHWC":
            return (b, shape[3], shape[1], shape[2])
        if self.kind == "NLC":
            return (b, shape[2], *self.grid)
        if self.kind == "NC":
            return (b, shape[1], 1, 1)
        if self.kind == "NCL":
            return (b, shape[1], 1, shape[2])
        return tuple(shape)

    def to_canonical(self, raw: torch.Tensor) -> torch.Tensor:
        """The (B, C, H, W) view of ``raw`` (a view, no copy, except for partitions)."""
        if self.partition is not None:
            return self.partition.to_canonical(raw, self.kind)
        if self.kind == "NHWC":
            return raw.permute(0, 3, 1, 2)
        if self.kind == "NLC":
            return raw[:, self.prefix:].transpose(1, 2).unflatten(2, self.grid)
        if self.kind == "NC":
            return raw[:, :, None, None]
        if self.kind == "NCL":
            return raw[:, :, None]
        return raw

    def cls_view(self, raw: torch.Tensor) -> torch.Tensor:
        """The first prefix token of an NLC output as (B, C, 1, 1)."""
        return raw[:, 0, :, None, None]

    def from_canonical(self, canon: torch.Tensor, raw: torch.Tensor,
                       cls: torch.Tensor | None = None) -> torch.Tensor:
        """A tensor equal to ``raw`` computed from ``canon`` (and ``cls``), so that what the network
        computes next depends on the views handed out (their gradients are those of the layer)."""
        if self.partition is not None:
            return self.partition.from_canonical(canon, raw, self.kind)
        if self.kind == "NHWC":
            return canon.permute(0, 2, 3, 1)
        if self.kind == "NLC":
            tokens = canon.flatten(2).transpose(1, 2)
            prefix = raw[:, :self.prefix]
            if cls is not None:
                prefix = torch.cat([cls.flatten(1)[:, None], raw[:, 1:self.prefix]], 1)
            return torch.cat([prefix, tokens], 1) if self.prefix else tokens
        if self.kind == "NC":
            return canon[:, :, 0, 0]
        if self.kind == "NCL":
            return canon[:, :, 0]
        return canon


def parse_layout(text: str) -> tuple[str, int | None]:
    """``"NHWC"`` -> ("NHWC", None); ``"NLC:1"`` -> ("NLC", 1) (one prefix token)."""
    kind, _, prefix = text.strip().upper().partition(":")
    if kind not in KINDS or (prefix and (kind != "NLC" or not prefix.isdigit())):
        raise PhospheneError(f"unknown layout {text!r}; use one of {', '.join(KINDS)} "
                             "(NLC:K for K class/register tokens)")
    return kind, int(prefix) if prefix else None


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """CLI ``NAME=LAYOUT`` items -> {name: layout}, each layout checked."""
    out = {}
    for item in items:
        name, sep, layout = item.partition("=")
        if not sep or not name.strip():
            raise PhospheneError(f"--layout takes NAME=LAYOUT (e.g. blocks.6=NLC), got {item!r}")
        parse_layout(layout)
        out[name.strip()] = layout.strip()
    return out


def grid_for(tokens: int, image_hw: tuple[int, int], exact: bool = True) -> tuple[int, int] | None:
    """(gh, gw) with gh * gw == tokens and gh / gw the image's aspect ratio (``exact``), or within
    one patch of it, or None."""
    if tokens <= 0:
        return None
    h, w = image_hw
    gh = max(1, round(math.sqrt(tokens * h / w)))
    for cand in (gh, gh - 1, gh + 1):
        if cand > 0 and tokens % cand == 0:
            gw = tokens // cand
            if cand * w == gw * h or (not exact and abs(cand / gw - h / w) <= h / w / min(cand, gw)):
                return cand, gw
    return None


def token_layout(length: int, image_hw: tuple[int, int], prefix: int | None) -> Layout:
    """NLC layout of ``length`` tokens: ``prefix`` leading tokens when known (and they leave a patch
    grid), else the fewest (at most `MAX_PREFIX`) that leave one (of the image's aspect ratio
    first, then within one patch of it); no grid -> a 1 x L row."""
    tries = [prefix] if prefix is not None else []
    tries += [k for k in range(MAX_PREFIX + 1) if k != prefix]
    for exact in (True, False):
        for k in tries:
            grid = grid_for(length - k, image_hw, exact) if k < length else None
            if grid is not None:
                return Layout("NLC", k, grid)
    return Layout("NLC", prefix or 0, (1, length - (prefix or 0)))


def model_prefix_tokens(root: nn.Module) -> int | None:
    """Prefix tokens the model declares: timm's ``num_prefix_tokens``, torchvision ViT's class token."""
    for module in root.modules():
        count = getattr(module, "num_prefix_tokens", None)
        if isinstance(count, int):
            return count
        if isinstance(getattr(module, "class_token", None), torch.Tensor) and hasattr(module, "seq_length"):
            return 1
    return None


def _by_type(module: nn.Module, shape: Sequence[int]) -> str | None:
    """The layout the module's type implies for an output of ``shape``, or None (inherit)."""
    rank = len(shape)
    if rank == 2:
        return "NC"
    last_dim = isinstance(module, nn.Linear) or (
        isinstance(module, nn.LayerNorm) and "2d" not in type(module).__name__.lower()
        and tuple(module.normalized_shape) == (shape[-1],))
    if rank == 3:
        if isinstance(module, _CHANNELS_FIRST_1D):
            return "NCL"
        return "NLC" if last_dim or isinstance(module, nn.MultiheadAttention) else None
    if rank == 4:
        dims = getattr(module, "dims", None)
        if isinstance(dims, (list, tuple)) and list(dims) in ([0, 2, 3, 1], [0, 3, 1, 2]):
            return "NHWC" if list(dims) == [0, 2, 3, 1] else "NCHW"
        if isinstance(module, _CHANNELS_FIRST_2D) or "2d" in type(module).__name__.lower():
            return "NCHW"
        return "NHWC" if last_dim else None
    return None


def _default(shape: Sequence[int]) -> str | None:
    return {2: "NC", 3: "NLC", 4: "NCHW"}.get(len(shape))


def detect(records: Sequence[tuple[str, nn.Module, tuple[int, ...]]], image_hw: tuple[int, int],
           prefix: int | None = None, overrides: dict[str, str] | None = None
           ) -> dict[str, Layout]:
    """Layout of every recorded layer: ``records`` are (name, module, output shape) in the order the
    outputs were produced. The module's type decides (`_by_type`); otherwise (activations, dropout,
    containers, unknown modules) the most recent earlier leaf output of the same shape does, else
    the rank does (4-D NCHW, 3-D NLC, 2-D NC). ``overrides`` maps names to `parse_layout` strings."""
    overrides = overrides or {}
    kinds: dict[str, str | None] = {}
    leaves: list[tuple[tuple[int, ...], str | None]] = []
    for name, module, shape in records:
        if name in overrides:
            kind, k = parse_layout(overrides[name])
            if _RANK[kind] != len(shape):
                raise PhospheneError(f"layout {kind} does not fit {name}: its output is "
                                     f"{'x'.join(map(str, shape))}")
        else:
            kind, k = _by_type(module, shape), None
            if kind is None:
                kind = next((kd for s, kd in reversed(leaves) if s == shape and kd), _default(shape))
        kinds[name] = kind
        if not any(True for _ in module.children()):
            leaves.append((shape, kind))
        if kind == "NLC":
            kinds[name] = token_layout(shape[1], image_hw, k if k is not None else prefix)
    return {n: (k if isinstance(k, Layout) else Layout(k)) for n, k in kinds.items() if k}
