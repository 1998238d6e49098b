"""The recording pass: which layers run in which order, their output shapes and layouts.

`LayerTap` needs, before its first real forward pass, the order in which its layers run (to stop
right after the deepest one) and each layer's `Layout`. `recorded_pass` learns both from one pass
of a single image without gradients, in eval mode and with every other hook set aside; an exception
raised by the network during that pass (a classifier head that rejects the input size) ends the
recording, and only matters when a layer the caller reads had not run yet. Records are cached per
model and input size.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.wrapper import layer_root
from . import layouts as lay

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
               "_backward_hooks", "_backward_pre_hooks")
LAYOUTS_ATTR = "_phosphene_layouts"  # per-model overrides {layer: layout}, see `set_layouts`


@dataclass
class PassRecord:
    """Named modules in the order their outputs came (with repeats for reused modules), the shape
    of each one's first tensor output, and the exception that ended the pass early, if any."""

    calls: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    error: Exception | None = None
    image_hw: tuple[int, int] = (0, 0)


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def first_tensor(value) -> tuple[torch.Tensor | None, int | None]:
    """The output tensor itself (index None), or the first tensor of a tuple/list and its index."""
    if isinstance(value, torch.Tensor):
        return value, None
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if isinstance(item, torch.Tensor):
                return item, i
    return None, None


@contextlib.contextmanager
def hooks_suspended(model: nn.Module) -> Iterator[None]:
    """Run with every module's own hooks removed (a `LayerTap` must not see the probe pass)."""
    saved = []
    for module in model.modules():
        for attr in HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                saved.append((module, attr, hooks))
                setattr(module, attr, type(hooks)())
    try:
        yield
    finally:
        for module, attr, hooks in saved:
            setattr(module, attr, hooks)


def recorded_pass(model: nn.Module, images: torch.Tensor, cache: bool = True) -> PassRecord:
    """Record a forward pass of ``images[:1]`` (see the module docstring)."""
    root = layer_root(model)
    named = [(n, m) for n, m in root.named_modules() if n]
    hw = tuple(images.shape[-2:])
    key = (hw, str(images.device), len(named))
    if cache and key in _CACHE.get(root, {}):
        return _CACHE[root][key]
    record = PassRecord(image_hw=hw)

    def make(name: str):
        def hook(_module, _inputs, output):
            record.calls.append(name)
            tensor, _ = first_tensor(output)
            if tensor is not None and name not in record.shapes:
                record.shapes[name] = tuple(tensor.shape)
        return hook

    modes = [(m, m.training) for m in model.modules()]
    with hooks_suspended(model):
        handles = [m.register_forward_hook(make(n)) for n, m in named]
        try:
            model.eval()
            with torch.no_grad():
                model(images[:1].detach())
        except Exception as exc:  # noqa: BLE001 - recorded; raised by the caller when it matters
            record.error = exc
        finally:
            for handle in handles:
                handle.remove()
            for module, mode in modes:
                module.training = mode
    if cache:
        _CACHE.setdefault(root, {})[key] = record
    return record


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
    for name in record.calls:
        if name not in seen and name in record.shapes and name in modules:
            seen.add(name)
            records.append((name, modules[name], record.shapes[name]))
    wanted = {**model_layouts(model), **(overrides or {})}
    return lay.detect(records, record.image_hw, lay.model_prefix_tokens(root), wanted)


def layer_table(model: nn.Module, size: int, device: str | torch.device = "cpu",
                overrides: dict[str, str] | None = None
                ) -> list[tuple[str, str, tuple[int, ...] | None, lay.Layout | None]]:
    """(name, module type, raw output shape, layout) of every layer for one (1, 3, size, size)
    image; shape and layout are None for layers that never run."""
    record = recorded_pass(model, torch.full((1, 3, size, size), 0.5, device=device), cache=False)
    if record.error is not None:
        raise record.error
    found = layouts_of(model, record, overrides)
    return [(name, type(module).__name__, record.shapes.get(name), found.get(name))
            for name, module in layer_root(model).named_modules() if name]


def layer_shapes(model: nn.Module, size: int, device: str | torch.device = "cpu"
                 ) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """(name, module type, output shape for one (1, 3, size, size) image) for every layer, from the
    recorded pass. Layers that never run get shape None; layers that return something other than a
    tensor get the shape of the first tensor they return."""
    return [(name, kind, shape) for name, kind, shape, _ in layer_table(model, size, device)]
