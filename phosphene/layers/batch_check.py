"""Which layers hold the images of a batch in their first dimension, one row (or R rows) per image.

`BatchCheck` watches the recording pass: two forward passes of two images each, [a, b] then [a, c].

- A layer whose first dimension is not a multiple of 2 does not hold the images: refused.
- Otherwise it has R = (first dimension) / 2 rows per image, image a's first. Image a's rows must be
  the same in both passes (a fingerprint of them is compared): if they change with the other image,
  the layer mixes the images of a batch (or its rows are not image-major): refused.
- R = 1: an ordinary layer. R > 1 (windows, patches or heads folded into the batch): the layer gets
  a `windows.Partition` when its input merges into a per-image map computed just before it, when
  its input is the output of a layer that has one, or when an enclosing module has one and the
  layer's rows fit it; otherwise it is refused.

Refused layers cannot be read per image (their values would be read from the wrong image, or mixed);
`refusal` says why in one line, with readable layers nearby.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .layouts import grid_for
from .windows import FORMATS, Partition, hints, infer

IMAGES = 2  # images per recording pass
SAMPLES = 256  # values of image a's rows compared between the two passes, besides their sums


def first_tensor(value) -> tuple[torch.Tensor | None, int | str | None]:
    """The output tensor itself (index None), the first tensor of a tuple/list and its index, or the
    first tensor value of a mapping (model-output objects) and its key."""
    if isinstance(value, torch.Tensor):
        return value, None
    if isinstance(value, (tuple, list)):
        items = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return None, None
    for key, item in items:
        if isinstance(item, torch.Tensor):
            return item, key
    return None, None


def _fingerprint(rows: torch.Tensor, grids: dict) -> torch.Tensor:
    """Values of ``rows`` on an even grid over every dimension (up to about `SAMPLES`), their sum,
    absolute sum and mean absolute value, on the device (no copy of ``rows``, no host sync);
    ``grids`` caches the grid indices per (size, count, device)."""
    rows = rows.detach()
    sample = rows
    per_dim = max(2, round(SAMPLES ** (1 / max(1, rows.dim()))))
    for dim, size in enumerate(rows.shape):
        key = (size, min(size, per_dim), rows.device)
        if key not in grids:
            grids[key] = torch.linspace(0, size - 1, key[1], device=rows.device).round().long()
        sample = sample.index_select(dim, grids[key])
    total = rows.abs().sum()
    sums = torch.stack([rows.sum(), total, total / max(1, rows.numel())]).double()
    return torch.cat([sample.reshape(-1).double(), sums])


@dataclass
class _Folded:
    """A layer with several rows per image, as the first pass saw it: its input and output tensors
    and the per-image maps computed just before it."""

    name: str
    source: torch.Tensor | None
    output: torch.Tensor
    references: list[torch.Tensor]


@dataclass
class BatchRows:
    """Rows per image of each recorded layer, the partitions of folded layers (partition, row
    format) and the reason each refused layer cannot be read per image."""

    rows: dict[str, int] = field(default_factory=dict)
    partitions: dict[str, tuple[Partition, str]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


class BatchCheck:
    """Forward hooks for the two recording passes (see the module docstring)."""

    def __init__(self, root: nn.Module, image_hw: tuple[int, int]):
        self.modules = dict(root.named_modules())
        self.image_hw = image_hw
        self.result = BatchRows()
        self.second = False
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._prints: dict[str, list[torch.Tensor]] = {}
        self._seen_second: set[str] = set()
        self._refs: deque[torch.Tensor] = deque(maxlen=8)
        self._known: dict[int, tuple[torch.Tensor, Partition, str]] = {}
        self._folded: list[_Folded] = []
        self._grids: dict = {}

    def hook(self, name: str):
        def hook(_module, inputs, output):
            tensor, _ = first_tensor(output)
            if tensor is None:
                return
            if self.second:
                self._again(name, tensor)
            elif name not in self._shapes and name not in self.result.refused:
                self._first(name, inputs, tensor)
        return hook

    def _first(self, name: str, inputs, tensor: torch.Tensor) -> None:
        lead = tensor.shape[0] if tensor.dim() else 0
        if lead == 0 or lead % IMAGES:
            self.result.refused[name] = (f"its output ({_shape(tensor.shape)} for {IMAGES} images) does not "
                                         "have the images as its first dimension")
            return
        rows = lead // IMAGES
        self.result.rows[name] = rows
        self._shapes[name] = (rows, *tensor.shape[1:])
        self._prints[name] = [_fingerprint(tensor[:rows], self._grids)]
        if rows == 1:
            self._add_references(tensor)
        else:
            self._fold(name, inputs, tensor)

    def _add_references(self, tensor: torch.Tensor) -> None:
        """Per-image maps a later folded layer may have been partitioned from, as (B, C, H, W)
        views (not copies: a map changed in place since fails the check, and the layer is refused)."""
        if tensor.dim() == 4 and tensor.is_floating_point():
            self._refs.append(tensor.detach())
            self._refs.append(tensor.detach().permute(0, 3, 1, 2))
        elif tensor.dim() == 3 and tensor.is_floating_point():
            grid = grid_for(tensor.shape[1], self.image_hw, exact=False)
            if grid is not None:
                self._refs.append(tensor.detach().transpose(1, 2).unflatten(2, grid))

    def _lineage(self, name: str) -> list[str]:
        """``name`` and the names of the modules enclosing it, nearest first."""
        parts = name.split(".")
        return [n for n in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if n in self.modules]

    def _fold(self, name: str, inputs, tensor: torch.Tensor) -> None:
        """Keep what resolving the folded layer ``name`` needs until the pass is over."""
        source, _ = first_tensor(inputs)
        usable = (isinstance(source, torch.Tensor) and source.dim() >= 2 and source.is_floating_point()
                  and source.shape[0] == tensor.shape[0])
        self._folded.append(_Folded(name, source if usable else None, tensor, list(self._refs)))

    def _resolve(self, item: _Folded) -> bool:
        """Give ``item`` its enclosing module's partition, or its input's (known or inferred)."""
        for ancestor in self._lineage(item.name)[1:]:
            found = self.result.partitions.get(ancestor)
            if found is not None and self._assign(item.name, *found):
                return True
        if item.source is None:
            return False
        known = self._known.get(id(item.source))
        if known is not None and known[0] is item.source:
            found = known[1:]
        else:
            sizes, shifts = hints(self.modules[n] for n in self._lineage(item.name))
            found = infer(item.source, IMAGES, item.references[::-1], sizes, shifts)  # newest first
            if found is not None:
                self._known[id(item.source)] = (item.source, *found)
        if found is None or not self._assign(item.name, *found):
            return False
        self._known[id(item.output)] = (item.output, *self.result.partitions[item.name])
        return True

    def _assign(self, name: str, part: Partition, prefer: str) -> bool:
        shape = self._shapes[name]
        for fmt in (prefer, *[f for f in FORMATS if f != prefer]):
            if part.fits(shape, fmt):
                self.result.partitions[name] = (part, fmt)
                return True
        return False

    def _why(self, name: str) -> str:
        rows = self.result.rows[name]
        parts = self.result.partitions
        near = next((parts[a] for a in self._lineage(name)[1:] if a in parts), None)
        if near is not None and near[0].rows == rows:
            return (f"its first dimension holds {near[0]} per image, but the rest of its output "
                    f"({_shape(self._shapes[name][1:])}) is not their tokens")
        return (f"its first dimension holds {rows} windows or patches per image and phosphene cannot tell "
                "which part of the image each one is")

    def _again(self, name: str, tensor: torch.Tensor) -> None:
        rows = self.result.rows.get(name)
        if rows is None or name in self._seen_second:
            return
        self._seen_second.add(name)
        if tensor.dim() and tensor.shape[0] == rows * IMAGES:
            self._prints[name].append(_fingerprint(tensor[:rows], self._grids))

    def finish(self) -> BatchRows:
        """Resolve the folded layers (outer modules first), compare the passes, refuse the rest."""
        for item in sorted(self._folded, key=lambda f: f.name.count(".")):  # stable: run order kept
            if not self._resolve(item):
                self.result.refused[item.name] = self._why(item.name)
        for name, prints in self._prints.items():
            if len(prints) == 2 and not _same(*prints):
                self.result.refused[name] = ("its output for one image changes with the other images of "
                                             "the batch (it mixes the images)")
        for name in self.result.refused:
            self.result.partitions.pop(name, None)
        return self.result


def _same(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Fingerprints equal up to round-off (relative to the values' size; NaN equals NaN)."""
    if first.shape != second.shape:
        return False
    mean = torch.maximum(first[-1], second[-1])
    tolerance = 1e-4 * torch.maximum(first.abs(), second.abs()) + 1e-5 * mean + 1e-9
    tolerance[-3:-1] = 1e-4 * torch.maximum(first[-2], second[-2]) + 1e-9  # the sums
    close = (first - second).abs() <= tolerance
    return bool((close | (torch.isnan(first) & torch.isnan(second))).all())


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) or "a scalar"
