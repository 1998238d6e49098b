"""Objectives: functions of layer activations giving one value per batch element, to maximize.

An `Objective` wraps ``fn(acts) -> (B,)`` together with the layers it reads, so the renderer knows how
deep to run the model. Objectives combine with ``+``, ``-``, scalar ``*`` and ``/``, and negation::

    obj = channel("_blocks.8", range(16)) - 1e-2 * deepdream("_blocks.4")

Unit arguments take an int (the same unit for every batch element) or a sequence (one unit per batch
element), so ``channel("_blocks.8", range(16))`` renders 16 channels as one batch of 16 images.

``acts`` maps layer names to activations of shape (B, C, H, W) (or (B, K) for logits), where B is
the number of images times the number of augmented views of each (``copies``); views of one image
are adjacent. An objective returns (B,) values; `evaluate` averages the views of each image.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import PhospheneError, UnitOutOfRangeError
from .layers.names import LOGITS
from .models.outputs import logits_of

Units = int | Sequence[int] | range | torch.Tensor
CLS = "#cls"  # the class-token view of a transformer layer (`phosphene.layers.names`)
IMAGE = "#image"  # the Renderer's images before transforms, (N, 3, H, W) (`phosphene.regularizers`)


@dataclass(frozen=True)
class Unit:
    """Channel ``channel`` of ``layer``, reduced by ``position`` (``mean``, ``centre`` or (y, x));
    with ``preactivation`` attribution reads the input of an activation module instead of its output.
    `channel` and `neuron` of one unit set ``Objective.unit`` to one; ``phosphene.units`` parses
    ``"layer:channel@y,x"`` strings into one."""

    layer: str
    channel: int
    position: str | tuple[int, int] = "mean"
    preactivation: bool = True

    def __str__(self) -> str:
        if self.layer.endswith(CLS):
            return f"{self.layer[:-len(CLS)]}:{self.channel}@cls"
        if isinstance(self.position, tuple):
            return f"{self.layer}:{self.channel}@{self.position[0]},{self.position[1]}"
        return f"{self.layer}:{self.channel}"

    def objective(self, batch: int = 1) -> Objective:
        """The objective of this unit for ``batch`` images (channel mean, or neuron at the position)."""
        units = [self.channel] * batch if batch > 1 else self.channel
        if self.position == "mean":
            objective = channel(self.layer, units)
        elif self.position == "centre":
            objective = neuron(self.layer, units)
        else:
            y, x = self.position
            objective = neuron(self.layer, units, x=x, y=y)
        objective.unit = self
        return objective


class Acts(dict):
    """Layer name -> activation, plus ``copies``: how many adjacent views each image has."""

    def __init__(self, activations: dict[str, torch.Tensor], copies: int = 1):
        super().__init__(activations)
        self.copies = copies


class Objective:
    """A differentiable score per batch element, reading the layers in ``layers``."""

    def __init__(self, fn: Callable[[Acts], torch.Tensor], layers: Iterable[str], name: str,
                 batch_size: int | None = None, labels: Sequence[str] | None = None):
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name
        self.batch_size = batch_size
        # a list is kept as given (not copied): `neuron` fills in its position once the map is known
        self.labels = labels if isinstance(labels, list) or labels is None else list(labels)
        self.unit: Unit | None = None  # the `Unit` when it reads one unit (`channel`, `neuron`)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def label(self, index: int) -> str:
        """A short caption for batch element ``index``."""
        if self.labels is not None:
            return self.labels[index % len(self.labels)]
        return self.name

    # -- algebra ---------------------------------------------------------------------------
    def _combine(self, other: Objective, op: Callable, symbol: str) -> Objective:
        sizes = {s for s in (self.batch_size, other.batch_size) if s not in (None, 1)}
        if len(sizes) > 1:
            raise PhospheneError(f"cannot combine objectives over {sorted(sizes)} batch elements")
        labels = self.labels or other.labels
        return Objective(lambda acts: op(self(acts), other(acts)), self.layers | other.layers,
                         f"{self.name} {symbol} {other.name}",
                         max(self.batch_size or 0, other.batch_size or 0) or None, labels)

    def __add__(self, other):
        if isinstance(other, numbers.Number):
            return Objective(lambda a: self(a) + other, self.layers, f"{self.name} + {other}",
                             self.batch_size, self.labels)
        return self._combine(other, torch.add, "+")

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __neg__(self):
        return -1 * self

    def __mul__(self, scale):
        if not isinstance(scale, numbers.Number):
            raise TypeError("objectives can be multiplied by numbers only")
        return Objective(lambda a: scale * self(a), self.layers, f"{scale:g}*({self.name})",
                         self.batch_size, self.labels)

    __rmul__ = __mul__

    def __truediv__(self, scale):
        return self * (1.0 / scale)


def evaluate(objective: Objective, acts: Acts, copies: int = 1) -> torch.Tensor:
    """Objective values per image (N,), averaging the ``copies`` adjacent views of each image."""
    if not isinstance(acts, Acts) or acts.copies != copies:
        acts = Acts(acts, copies)
    values = objective(acts)
    if copies == 1:
        return values
    return values.view(-1, copies).mean(1)


# -- unit bookkeeping ------------------------------------------------------------------------
def _as_unit_list(units: Units) -> list[int]:
    if isinstance(units, torch.Tensor):
        return [int(u) for u in units.flatten().tolist()]
    if isinstance(units, numbers.Integral):
        return [int(units)]
    return [int(u) for u in units]


class _UnitIndex:
    """One unit per batch element, expanded to B rows (views of one image are adjacent)."""

    def __init__(self, units: Units, what: str):
        self.units = _as_unit_list(units)
        if not self.units:
            raise PhospheneError(f"no {what} given")
        self.what = what
        self._checked: set[int] = set()
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def batch_size(self) -> int | None:
        return len(self.units) if len(self.units) > 1 else None

    def rows(self, batch: int, size: int, device: torch.device) -> torch.Tensor:
        """Unit index for each of ``batch`` rows; checks the units against ``size`` once."""
        if size not in self._checked:
            bad = [u for u in self.units if not 0 <= u < size]
            if bad:
                raise UnitOutOfRangeError(
                    f"{self.what} {bad[0]} out of range: the layer has {size} (0-{size - 1})")
            self._checked.add(size)
        key = (batch, str(device))
        if key not in self._cache:
            n = len(self.units)
            if batch % n:
                raise PhospheneError(
                    f"{n} {self.what}s do not divide a batch of {batch} images x views")
            index = torch.tensor(self.units, device=device)
            self._cache[key] = index.repeat_interleave(batch // n)
        return self._cache[key]


def _labels(layer: str, units: list[int]) -> list[str]:
    return [f"{layer}:{u}" for u in units]


def _pick_channels(act: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """act (B, C, H, W) -> (B, H, W), channel index[b] of each row."""
    return act[torch.arange(act.shape[0], device=act.device), index]


# -- objectives ------------------------------------------------------------------------------
def channel(layer: str, units: Units) -> Objective:
    """Mean activation of channel ``units[b]`` over all positions."""
    index = _UnitIndex(units, "channel")

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        rows = index.rows(act.shape[0], act.shape[1], act.device)
        return _pick_channels(act, rows).mean((-2, -1))

    objective = Objective(fn, [layer], f"channel({layer}, {_short(index.units)})", index.batch_size,
                          _labels(layer, index.units))
    if len(set(index.units)) == 1:
        objective.unit = Unit(layer, index.units[0], "mean")
    return objective


def neuron(layer: str, units: Units, x: int | None = None, y: int | None = None) -> Objective:
    """Activation of channel ``units[b]`` at position (y, x); the centre by default. Labels say the
    position used (``layer:3@7,7``; the centre's once the map's size is known)."""
    index = _UnitIndex(units, "channel")
    at = "centre" if x is None and y is None else ",".join("centre" if v is None else str(v) for v in (y, x))
    labels = [f"{label}@{at}" for label in _labels(layer, index.units)]
    used: list[tuple[int, int] | None] = [None]

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        h, w = act.shape[-2:]
        yy, xx = (h // 2 if y is None else y), (w // 2 if x is None else x)
        if not (0 <= yy < h and 0 <= xx < w):
            raise UnitOutOfRangeError(f"position ({yy}, {xx}) outside the {h}x{w} map of {layer}")
        if used[0] != (yy, xx):  # the position of the latest evaluation (the clean image's, in render)
            used[0] = (yy, xx)
            labels[:] = [f"{label}@{yy},{xx}" for label in _labels(layer, index.units)]
        rows = index.rows(act.shape[0], act.shape[1], act.device)
        return act[torch.arange(act.shape[0], device=act.device), rows, yy, xx]

    objective = Objective(fn, [layer], f"neuron({layer}, {_short(index.units)})", index.batch_size,
                          labels)
    if len(set(index.units)) == 1 and (x is None) == (y is None):
        objective.unit = Unit(layer, index.units[0], "centre" if x is None else (y, x))
    return objective


def deepdream(layer: str) -> Objective:
    """Mean of squared activations over channels and positions (DeepDream)."""
    return Objective(lambda acts: acts[layer].pow(2).flatten(1).mean(1), [layer],
                     f"deepdream({layer})")


layer = deepdream  # lucid's name for the same objective


def direction(layer: str, vector: torch.Tensor | Sequence[float], cossim_pow: float = 0.0
              ) -> Objective:
    """Mean over positions of ``<a, v>`` (v unit-normalized), times ``cos(a, v)^cossim_pow``.

    ``vector`` is (C,) for one direction or (D, C) for one direction per batch element.
    """
    vec = torch.as_tensor(vector, dtype=torch.float32)
    vec = vec / vec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    batch = vec.shape[0] if vec.dim() == 2 and vec.shape[0] > 1 else None
    cache: dict[str, torch.Tensor] = {}

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        key = str(act.device)
        if key not in cache:
            cache[key] = vec.to(act.device)
        v = cache[key].reshape(-1, act.shape[1])
        if v.shape[0] > 1:
            v = v.repeat_interleave(act.shape[0] // v.shape[0], 0)
        v = v.expand(act.shape[0], -1)[:, :, None, None].to(act.dtype)
        dot = (act * v).sum(1)
        if cossim_pow:
            cos = dot / act.norm(dim=1).clamp_min(1e-6)
            dot = dot * cos.clamp_min(0.1).pow(cossim_pow)
        return dot.flatten(1).mean(1)

    return Objective(fn, [layer], f"direction({layer})", batch)


def class_logit(classes: Units) -> Objective:
    """The logit of class ``classes[b]``."""
    index = _UnitIndex(classes, "class")

    def fn(acts: Acts) -> torch.Tensor:
        logits = logits_of(acts[LOGITS])
        rows = index.rows(logits.shape[0], logits.shape[1], logits.device)
        return logits.gather(1, rows[:, None])[:, 0]

    return Objective(fn, [LOGITS], f"logit({_short(index.units)})", index.batch_size,
                     [f"class {u}" for u in index.units])


def class_prob(classes: Units) -> Objective:
    """The softmax probability of class ``classes[b]``."""
    index = _UnitIndex(classes, "class")

    def fn(acts: Acts) -> torch.Tensor:
        logits = logits_of(acts[LOGITS])
        rows = index.rows(logits.shape[0], logits.shape[1], logits.device)
        return logits.float().softmax(1).gather(1, rows[:, None])[:, 0]

    return Objective(fn, [LOGITS], f"prob({_short(index.units)})", index.batch_size,
                     [f"class {u}" for u in index.units])


def diversity(layer: str, group: int | None = None) -> Objective:
    """Penalty on similar styles across the batch: ``-sum_{b != a} cos(G_a, G_b) / N`` for image a.

    G is the Gram matrix of the layer over positions (lucid's diversity). Summed over the batch
    this equals lucid's objective. The views of one image share its Gram matrix (their mean).
    With ``group``, each run of ``group`` adjacent images is compared only within itself (N = group),
    so several units rendered in one batch each get diverse images without competing.
    """

    def fn(acts: Acts) -> torch.Tensor:
        copies = getattr(acts, "copies", 1)
        act = acts[layer].float()
        b, c = act.shape[:2]
        flat = act.reshape(b, c, -1)
        gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(b, -1)
        if copies > 1:
            gram = gram.view(b // copies, copies, -1).mean(1)
        gram = F.normalize(gram, dim=1)
        if group is None:
            sim = gram @ gram.T
            values = -(sim.sum(1) - sim.diagonal()) / max(sim.shape[0], 1)
        else:
            runs = gram.view(-1, group, gram.shape[-1])
            sim = runs @ runs.transpose(1, 2)
            values = (-(sim.sum(-1) - sim.diagonal(dim1=1, dim2=2)) / group).reshape(-1)
        return values.repeat_interleave(copies) if copies > 1 else values

    name = f"diversity({layer})" if group is None else f"diversity({layer}, group={group})"
    return Objective(fn, [layer], name)


def alignment(layer: str, target: torch.Tensor, cossim_pow: float = 1.0) -> Objective:
    """``(a . t) * max(cos(a, t), 0.1)^cossim_pow`` with a and t flattened over (C, H, W).

    ``target`` is (C, H, W) or (B, C, H, W) for a spatial pattern (the inhibition paper's +/-
    attribution targets), or (C,) / (B, C) for a direction repeated at every position (atlas icons;
    Carter et al.'s ``(h.v)^(n+1) / (|h||v|)^n``). A spatial target is resized to the layer's map.
    """
    target = torch.as_tensor(target, dtype=torch.float32)
    spatial = target.dim() in (3, 4)
    if target.dim() in (1, 3):
        target = target[None]
    batch = target.shape[0] if target.shape[0] > 1 else None
    cache: dict[tuple, torch.Tensor] = {}

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        key = (str(act.device), tuple(act.shape))
        if key not in cache:
            t = target.to(act.device)
            if spatial and t.shape[-2:] != act.shape[-2:]:
                t = F.interpolate(t, size=act.shape[-2:], mode="bilinear", align_corners=False)
            if not spatial:
                t = t[:, :, None, None].expand(-1, -1, *act.shape[-2:])
            if t.shape[1] != act.shape[1]:
                raise PhospheneError(f"target has {t.shape[1]} channels, {layer} has {act.shape[1]}")
            if t.shape[0] > 1:
                t = t.repeat_interleave(act.shape[0] // t.shape[0], 0)
            cache[key] = t.expand(act.shape[0], -1, -1, -1).flatten(1)
        t = cache[key].to(act.dtype)
        a = act.flatten(1)
        dot = (a * t).sum(1)
        cos = dot / (a.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-8)
        return dot * cos.clamp_min(0.1).pow(cossim_pow)

    return Objective(fn, [layer], f"alignment({layer})", batch)


def interpolate(a: Objective, b: Objective, frames: int) -> Objective:
    """``frames`` images from ``a`` to ``b``: frame i maximizes ``(1 - t) a + t b``, t = i / (frames - 1)
    (lucid's channel_interpolate; `phosphene.interaction` renders it, aligned or not)."""
    if frames < 2 or any(o.batch_size not in (None, 1) for o in (a, b)):
        raise PhospheneError("interpolate needs two single-image objectives and at least 2 frames")
    t = torch.linspace(0, 1, frames)

    def fn(acts: Acts) -> torch.Tensor:
        va, vb = a(acts), b(acts)
        w = t.to(va.device).repeat_interleave(va.shape[0] // frames)
        return (1 - w) * va + w * vb

    labels = [a.label(0)] + [f"{1 - x:.2f}/{x:.2f}" for x in t[1:-1].tolist()] + [b.label(0)]
    return Objective(fn, a.layers | b.layers, f"interpolate({a.name}, {b.name})", frames, labels)


def stack(objectives: Sequence[Objective]) -> Objective:
    """One batch scored piecewise: the first ``objectives[0].batch_size or 1`` images by the first
    objective, the next ones by the second, and so on (e.g. +/- targets and a unit in one batch)."""
    objectives = list(objectives)
    sizes = [o.batch_size or 1 for o in objectives]
    total = sum(sizes)

    def fn(acts: Acts) -> torch.Tensor:
        rows = next(iter(acts.values())).shape[0]
        per_image = rows // total
        values, start = [], 0
        for objective, size in zip(objectives, sizes):
            stop = start + size * per_image
            c = getattr(acts, "copies", 1)  # IMAGE has one row per image, the layers one per view
            part = Acts({k: v[start // c:stop // c] if k == IMAGE else v[start:stop]
                         for k, v in acts.items()}, c)
            values.append(objective(part))
            start = stop
        return torch.cat(values)

    labels = [o.label(i) for o, size in zip(objectives, sizes) for i in range(size)]
    layers = frozenset().union(*(o.layers for o in objectives))
    return Objective(fn, layers, "stack(" + ", ".join(o.name for o in objectives) + ")", total, labels)


def _short(units: list[int]) -> str:
    if len(units) == 1:
        return str(units[0])
    if units == list(range(units[0], units[0] + len(units))):
        return f"{units[0]}-{units[-1]}"
    return ",".join(map(str, units[:4])) + ("..." if len(units) > 4 else "")


def parse_units(spec: str) -> list[int]:
    """Parse ``"0-15"``, ``"3"``, ``"0,4,8-11"`` into a list of ints."""
    units: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                units.extend(range(lo_i, hi_i + 1))
            elif part:
                units.append(int(part))
    except ValueError:
        raise PhospheneError(f"cannot read unit list {spec!r}; use e.g. 0-15 or 1,5,9") from None
    if not units:
        raise PhospheneError(f"empty unit list {spec!r}")
    return units
