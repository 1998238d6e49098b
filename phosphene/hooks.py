"""Reading layer activations, with the forward pass cut short after the deepest layer needed.

Layers are named as in ``named_modules()`` of the network (see `layer_root`). The special name
``"logits"`` is the model's output, and ``"input"`` the [0,1] image the model receives. A `LayerTap`
hooks the requested layers; the first call records in which order they run, later calls stop the
forward pass right after the last of them has produced its output, so activations are exactly those
of a full forward pass while the layers after it cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .errors import LayerNotFoundError
from .models.wrapper import layer_root

LOGITS = "logits"
INPUT = "input"
SPECIAL_LAYERS = (INPUT, LOGITS)


def layer_names(model: nn.Module) -> list[str]:
    """All addressable layer names of ``model`` (its ``named_modules()`` minus the root)."""
    return [name for name, _ in layer_root(model).named_modules() if name]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name``; `LayerNotFoundError` with the closest names if there is none."""
    modules = dict(layer_root(model).named_modules())
    if name and name in modules:
        return modules[name]
    raise LayerNotFoundError(name, list(SPECIAL_LAYERS) + [n for n in modules if n])


def check_layers(model: nn.Module, names: Iterable[str]) -> None:
    """Raise `LayerNotFoundError` for the first name in ``names`` the model does not have."""
    for name in names:
        if name not in SPECIAL_LAYERS:
            resolve_layer(model, name)


class _StopForward(Exception):
    """Raised by a hook to end the forward pass once every requested layer has run."""


class LayerTap:
    """Run ``model`` and return the activations of ``layers`` as a dict, truncating the forward.

    Use as a context manager (hooks are removed on exit) or call `close`. With ``truncate=False``
    the model always runs to the end. When a layer runs several times in one forward pass (a
    module reused), the last output before the stopping point is kept.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], truncate: bool = True):
        self.model = model
        self.forward = model  # what runs the model (`render(compile=True)` puts a compiled one here)
        self.layers = sorted(set(layers))
        check_layers(model, self.layers)
        self.hooked = [n for n in self.layers if n not in SPECIAL_LAYERS]
        self.truncate = truncate and LOGITS not in self.layers and bool(self.hooked)
        self._acts: dict[str, torch.Tensor] = {}
        self._calls: list[str] = []
        self._stop_at: tuple[str, int] | None = None  # (layer, how many times it has run)
        self._counts: dict[str, int] = {}
        self._handles = [resolve_layer(model, n).register_forward_hook(self._hook(n))
                         for n in self.hooked]

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self._acts[name] = output
            count = self._counts.get(name, 0) + 1
            self._counts[name] = count
            if self._stop_at is None:
                self._calls.append(name)
            elif self._stop_at == (name, count):
                raise _StopForward

        return hook

    @property
    def stop_layer(self) -> str | None:
        """The layer after which the forward pass stops (known after the first call)."""
        return self._stop_at[0] if self._stop_at else None

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations of the tapped layers for ``images`` (N, 3, H, W) in [0, 1]."""
        self._acts = {}
        self._counts = {}
        if INPUT in self.layers:
            self._acts[INPUT] = images
        if not self.hooked and LOGITS not in self.layers:
            return self._acts  # only the input is read: the model need not run
        try:
            output = self.forward(images)
        except _StopForward:
            pass
        else:
            if LOGITS in self.layers:
                self._acts[LOGITS] = output
            if self.truncate and self._stop_at is None:
                missing = set(self.hooked) - set(self._calls)
                if missing:
                    raise RuntimeError(f"layers never ran in the forward pass: {sorted(missing)}")
                last = self._calls[-1]
                self._stop_at = (last, self._calls.count(last))
        return self._acts

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> LayerTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def layer_shapes(model: nn.Module, size: int, device: str | torch.device = "cpu"
                 ) -> list[tuple[str, str, tuple[int, ...] | None]]:
    """(name, module type, output shape for one (1, 3, size, size) image) for every layer.

    Layers that never run in the forward pass get shape None; layers that return something other
    than a tensor get the shape of the first tensor they return.
    """
    root = layer_root(model)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in root.named_modules():
        if not name:
            continue

        def hook(_m, _i, out, name=name):
            if isinstance(out, (tuple, list)):
                out = next((o for o in out if isinstance(o, torch.Tensor)), None)
            if isinstance(out, torch.Tensor):
                shapes[name] = tuple(out.shape)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.full((1, 3, size, size), 0.5, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return [(name, type(module).__name__, shapes.get(name))
            for name, module in root.named_modules() if name]
