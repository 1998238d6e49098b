"""The recording pass: which layers run in which order, their output shapes and layouts.

`LayerTap` needs, before its first real forward pass, the order in which its layers run (to stop
right after the deepest one) and each layer's `Layout`. `recorded_pass` learns both from two
passes of two images each ([a, b], then [a, c]) without gradients, in eval mode and with every other
hook set aside; `batch_check.BatchCheck` learns from them which layers hold one row per image, which
fold windows or patches into the batch (and how they tile the image), and which cannot be read per
image at all (refused, with the reason). It also notes the layers whose output tensor is changed in
place after the layer returned it (``ReLU(inplace=True)`` after a BatchNorm, ``out += identity`` in a
residual block): a tap must copy those, or it would read the values of a later layer. An exception
raised by the network during that pass (a classifier head that rejects the input size) ends the
recording, and only matters when a layer the caller reads had not run yet. Records are cached per
model and input size.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import PhospheneError
from ..models.input_shape import input_channels
from ..models.probe import hooks_suspended
from ..models.wrapper import as_image_model, layer_root
from . import layouts as lay
from .batch_check import IMAGES, BatchCheck, BatchRows, first_tensor
from .heads import heads_readable

LAYOUTS_ATTR = "_phosphene_layouts"  # per-model overrides {layer: layout}, see `set_layouts`


@dataclass
class PassRecord:
    """Named modules in the order their outputs came (with repeats for reused modules), the shape
    of each one's first tensor output for one image ((R, ...) for R rows per image), how each holds
    the images (`BatchRows`), and the exception that ended the pass early, if any."""

    calls: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    error: Exception | None = None
    modified: set[str] = field(default_factory=set)  # outputs changed in place after their layer ran
    image_hw: tuple[int, int] = (0, 0)
    batch: BatchRows = field(default_factory=BatchRows)

    @property
    def refused(self) -> dict[str, str]:
        """Layers that cannot be read per image: name -> why."""
        return self.batch.refused


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pair(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[a, b] and [a, c]: the caller's first image and two fixed random images of its shape."""
    first = images[:1].detach()
    gen = torch.Generator().manual_seed(0)
    others = torch.rand((2, *first.shape[1:]), generator=gen).to(first.device, first.dtype)
    return torch.cat([first, others[:1]]), torch.cat([first, others[1:]])


def forget_records(model: nn.Module) -> None:
    """Drop the cached records of ``model`` (after modules were added to it or removed)."""
    _CACHE.pop(layer_root(model), None)


def recorded_pass(model: nn.Module, images: torch.Tensor, cache: bool = True) -> PassRecord:
    """Record the forward passes of ``images[:1]`` beside other images (see the module docstring)."""
    root = layer_root(model)
    named = [(n, m) for n, m in root.named_modules() if n]
    hw = tuple(images.shape[-2:])
    key = (hw, str(images.device), len(named))
    if cache and key in _CACHE.get(root, {}):
        return _CACHE[root][key]
    record = PassRecord(image_hw=hw)
    check = BatchCheck(root, hw)
    produced: list[tuple[str, torch.Tensor, int]] = []  # first pass: (layer, output, its version)

    def make(name: str):
        watch = check.hook(name)

        def hook(module, inputs, output):
            if not check.second:
                record.calls.append(name)
                tensor, _ = first_tensor(output)
                if tensor is not None and not tensor.is_inference():
                    produced.append((name, tensor, tensor._version))
                if tensor is not None and tensor.dim() and name not in record.shapes:
                    lead = tensor.shape[0]
                    record.shapes[name] = ((lead // IMAGES, *tensor.shape[1:]) if lead % IMAGES == 0
                                           else tuple(tensor.shape))
            watch(module, inputs, output)
        return hook

    modes = [(m, m.training) for m in model.modules()]
    with hooks_suspended(model):
        handles = [m.register_forward_hook(make(n)) for n, m in named]
        try:
            model.eval()
            for index, pair in enumerate(_pair(images)):
                check.second = index == 1
                try:
                    with torch.inference_mode(False), torch.no_grad():  # outputs with version counters
                        model(pair.clone())
                except Exception as exc:  # noqa: BLE001 - recorded; raised by the caller when it matters
                    record.error = record.error or exc
                if index == 0:
                    record.modified = {n for n, t, version in produced if t._version != version}
                    produced.clear()
        finally:
            for handle in handles:
                handle.remove()
            for module, mode in modes:
                module.training = mode
    record.batch = check.finish()
    if cache:
        _CACHE.setdefault(root, {})[key] = record
    return record


def failure(record: PassRecord) -> PhospheneError:
    """The one-line error for a network that failed during the recording pass, with the way out
    for models that take one input size only."""
    h, w = record.image_hw
    error = record.error
    detail = (str(error).strip().splitlines() or [""])[0][:160]
    return PhospheneError(
        f"the model fails on {h}x{w} images ({type(error).__name__}: {detail}); if it takes one input "
        "size only, use that --size, render with --transforms crops (its views keep --size), or declare "
        "it (model.fixed_size = SIDE)")


def readable_near(model: nn.Module, record: PassRecord, name: str) -> list[str]:
    """Up to three layers near ``name`` that can be read per image: the nearest enclosing module and
    the nearest layers that finished before and after it."""
    order = [n for n in dict.fromkeys(record.calls) if n in record.shapes]
    usable = [n for n in order if n not in record.refused]
    parts = name.split(".")
    enclosing = [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    near = [n for n in enclosing if n in usable][:1]
    if name in order:
        at = order.index(name)
        near += [n for n in order[:at] if n in usable][-1:] + [n for n in order[at + 1:] if n in usable][:1]
    return list(dict.fromkeys(near))


def set_layouts(model: nn.Module, layouts: dict[str, str]) -> None:
    """Declare the layout of layers of ``model`` for every later call (``{"blocks.6": "NLC"}``;
    values as `layouts.parse_layout` reads them); detection decides for the others."""
    for value in layouts.values():
        lay.parse_layout(value)
    root = layer_root(model)
    current = dict(getattr(root, LAYOUTS_ATTR, {}))
    current.update(layouts)
    setattr(root, LAYOUTS_ATTR, current)


def model_layouts(model: nn.Module) -> dict[str, str]:
    """The overrides declared with `set_layouts`."""
    return dict(getattr(layer_root(model), LAYOUTS_ATTR, {}))


def layouts_of(model: nn.Module, record: PassRecord, overrides: dict[str, str] | None = None
               ) -> dict[str, lay.Layout]:
    """Layout of every layer that produced a tensor in ``record`` (model overrides, then
    ``overrides``, then detection)."""
    root = layer_root(model)
    modules = dict(root.named_modules())
    seen, records = set(), []
    rows = record.batch.rows
    for name in record.calls:
        if name not in seen and name in record.shapes and name in modules and rows.get(name) == 1:
            seen.add(name)
            records.append((name, modules[name], record.shapes[name]))
    wanted = {**model_layouts(model), **(overrides or {})}
    found = lay.detect(records, record.image_hw, lay.model_prefix_tokens(root), wanted)
    for name, (part, fmt) in record.batch.partitions.items():
        found[name] = lay.Layout(fmt, 0, part.hw, part)
    for name in record.refused:
        found.pop(name, None)
    return found


def execution_order(model: nn.Module, size: int | None = None) -> list[str]:
    """Names of the modules of ``model`` in the order they finish their forward pass: the recorded
    pass (`recorded_pass`) of a grey image of the model's fixed side, else ``size``, else its input
    size; `failure` when the network cannot run at that side."""
    model = as_image_model(model)
    side = model.fixed_side or size or model.input_size
    record = recorded_pass(model, torch.full((1, model.channels, side, side), 0.5, device=model.device))
    if record.error is not None:
        raise failure(record) from record.error
    return list(record.calls)


@dataclass
class LayerRow:
    """One layer as `phosphene layers` shows it: module type, output shape for one image ((R, ...)
    for R rows per image), layout, the views it supports (``#cls``, ``#heads``) and, for a layer that
    cannot be read per image, why."""

    name: str
    kind: str
    shape: tuple[int, ...] | None
    layout: lay.Layout | None
    views: tuple[str, ...] = ()
    refused: str | None = None


def layer_rows(model: nn.Module, size: int, device: str | torch.device = "cpu",
               overrides: dict[str, str] | None = None) -> list[LayerRow]:
    """A `LayerRow` for every layer at ``size`` (shape and layout None for layers that never run)."""
    channels = input_channels(model)
    record = recorded_pass(model, torch.full((1, channels, size, size), 0.5, device=device), cache=False)
    if record.error is not None:
        raise failure(record) from record.error
    found = layouts_of(model, record, overrides)
    rows = []
    for name, module in layer_root(model).named_modules():
        if not name:
            continue
        layout = found.get(name)
        views = (("#cls",) if layout is not None and layout.kind == "NLC" and layout.prefix else ())
        views += ("#heads",) if name in found and heads_readable(module, name, record.calls) else ()
        rows.append(LayerRow(name, type(module).__name__, record.shapes.get(name), layout, views,
                             record.refused.get(name)))
    return rows


def layer_table(model: nn.Module, size: int, device: str | torch.device = "cpu",
                overrides: dict[str, str] | None = None
                ) -> list[tuple[str, str, tuple[int, ...] | None, lay.Layout | None]]:
    """(name, module type, output shape for one image, layout) of every layer for a (1, 3, size,
    size) image; shape and layout are None for layers that never run, layout None for layers that
    cannot be read per image (`layer_rows` says why)."""
    return [(r.name, r.kind, r.shape, r.layout) for r in layer_rows(model, size, device, overrides)]


def layer_shapes(model: nn.Module, size: int, device: str | torch.device = "cpu"
                 ) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """(name, module type, output shape for one (1, 3, size, size) image) for every layer, from the
    recorded pass. Layers that never run get shape None; layers that return something other than a
    tensor get the shape of the first tensor they return."""
    return [(name, kind, shape) for name, kind, shape, _ in layer_table(model, size, device)]
