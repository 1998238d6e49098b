"""Reading layer activations, with the forward pass cut short after the deepest layer needed.

Layers are named as in `phosphene.layers.names` (``named_modules()`` names, ``input``, ``logits``,
``#cls`` and ``#heads`` views). A `LayerTap`
hooks the requested layers and hands out each one's canonical (B, C, H, W) view (C = features, see
`phosphene.layouts`); a recorded pass of one image learns the order in which they run, and every call
stops the forward pass right after the last of them has produced its output, so activations are
exactly those of a full forward pass while the layers after it cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import PhospheneError
from .batch_check import first_tensor
from .heads import heads_readable, hook_heads
from .layouts import Layout, parse_layout
from .names import INPUT, LOGITS, SPECIAL_LAYERS, check_layers, resolve_layer, split_view
from .recording import PassRecord, failure, layouts_of, readable_near, recorded_pass


class StopForward(Exception):
    """Raised by a hook to end the forward pass once every requested layer has run."""


class LayerTap:
    """Run ``model`` and return the activations of ``layers`` as a dict, truncating the forward.

    Every activation is the canonical (B, C, H, W) view of its layer, C = features (see
    `phosphene.layouts`): token outputs give their patch grid, NHWC outputs are permuted, (B, K)
    outputs are (B, K, 1, 1); ``NAME#cls`` is the class token (B, C, 1, 1) and ``ATTN#heads`` the
    attention heads. The views are part of the autograd graph (gradients w.r.t. them are the
    layer's). ``layouts`` overrides detected layouts per layer (``{"blocks.6": "NLC"}``).

    Before the first call a recorded pass (`probe.recorded_pass`, one image, no gradients) learns
    the order of the layers and their layouts, so every call, the first included, stops right
    after the deepest layer. Use as a context manager (hooks are removed on exit) or call `close`.
    With ``truncate=False`` the model always runs to the end. When a layer runs several times in
    one forward pass (a module reused), the last output before the stopping point is kept. A layer
    whose output the network changes in place later (an in-place activation after it) is read before
    that change: the tap keeps the layer's tensor and hands the rest of the network a copy.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], truncate: bool = True,
                 layouts: dict[str, str] | None = None):
        self.model = model
        self.forward = model  # what runs the model (`render(compile=True)` puts a compiled one here)
        self.layers = sorted(set(layers))
        check_layers(model, self.layers)
        for value in (layouts or {}).values():
            parse_layout(value)
        self.overrides = dict(layouts or {})
        named = [n for n in self.layers if n not in SPECIAL_LAYERS]
        self.hooked = sorted({split_view(n)[0] for n in named})
        self._cls = {split_view(n)[0] for n in named if split_view(n)[1] == "cls"}
        self.truncate = truncate and LOGITS not in self.layers and bool(self.hooked)
        self.layouts: dict[str, Layout] = {}
        self._acts: dict[str, torch.Tensor] = {}
        self._hw: tuple[int, ...] | None = None
        self._stop_at: tuple[str, int] | None = None  # (layer, how many times it has run)
        self._counts: dict[str, int] = {}
        self._copy: set[str] = set()  # layers whose output is changed in place downstream
        self._handles = [hook_heads(resolve_layer(model, n), self._heads_hook(n))
                         for n in named if split_view(n)[1] == "heads"]
        self._handles += [resolve_layer(model, n).register_forward_hook(self._hook(n))
                          for n in self.hooked]

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            count = self._counts.get(name, 0) + 1
            self._counts[name] = count
            stop = self._stop_at == (name, count)
            layout = self.layouts.get(name)
            result = None
            if layout is None or layout.identity:
                self._acts[name] = output
                if name in self._copy and not stop and isinstance(output, torch.Tensor):
                    result = output.clone()  # the network changes its own copy in place
            else:
                raw, index = first_tensor(output)
                canon = self._acts[name] = layout.to_canonical(raw)
                cls = None
                if name in self._cls:
                    cls = self._acts[name + "#cls"] = layout.cls_view(raw)
                if not stop and raw.requires_grad and torch.is_grad_enabled():
                    result = layout.from_canonical(canon, raw, cls)
                    result = _replace(output, index, result.clone() if name in self._copy else result)
                elif not stop and name in self._copy:
                    result = _replace(output, index, raw.clone())
            if stop:
                raise StopForward
            return result

        return hook

    def _heads_hook(self, name: str):
        base = split_view(name)[0]

        def store(norms: torch.Tensor) -> None:
            layout = self.layouts.get(base)
            self._acts[name] = layout.to_canonical(norms) if layout is not None else norms

        return store

    def _prepare(self, images: torch.Tensor) -> None:
        """Order and layouts of the tapped layers from the recorded pass at this input size."""
        record = recorded_pass(self.model, images)
        missing = [n for n in self.hooked if n not in record.calls]
        if record.error is not None and (missing or LOGITS in self.layers):
            raise failure(record) from record.error
        if missing and self.truncate:
            raise RuntimeError(f"layers never ran in the forward pass: {sorted(missing)}")
        for name in self.hooked:
            if name in record.refused:
                near = readable_near(self.model, record, name)
                raise PhospheneError(f"{name} cannot be read per image: {record.refused[name]}"
                                     + (f"; layers near it that can: {', '.join(near)}" if near else ""))
        self._check_heads(record)
        found = layouts_of(self.model, record, self.overrides)
        self.layouts = {n: found[n] for n in self.hooked if n in found}
        self._copy = {n for n in self.hooked if n in record.modified}
        for name in self._cls:
            layout = self.layouts.get(name)
            if layout is None or layout.kind != "NLC" or not layout.prefix:
                raise PhospheneError(f"{name}#cls: {name} has no class token (layout "
                                     f"{layout or 'unknown'}); #cls needs token outputs")
        if self.truncate and self._stop_at is None:
            order = [n for n in record.calls if n in self.hooked]
            self._stop_at = (order[-1], order.count(order[-1]))
        self._hw = tuple(images.shape[-2:])

    def _check_heads(self, record: PassRecord) -> None:
        """A one-line error for ``ATTN#heads`` when ATTN's output projection is not called as a
        module (its heads are computed inside a function, as in torchvision's Swin)."""
        for name in self.layers:
            base, view = split_view(name)
            module = resolve_layer(self.model, base) if view == "heads" else None
            if module is not None and not heads_readable(module, base, record.calls):
                raise PhospheneError(f"{name}: {base} ({type(module).__name__}) computes its heads inside "
                                     "its forward without calling its output projection as a module, so "
                                     f"its heads cannot be read; read {base} itself")

    @property
    def stop_layer(self) -> str | None:
        """The layer after which the forward pass stops (known after the first call)."""
        return self._stop_at[0] if self._stop_at else None

    def canonical(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        """The canonical view of ``raw``, a tensor laid out like the output of layer ``name``
        (e.g. an activation module's input), once the tap has run; ``NAME#cls`` gives its class token."""
        base, view = split_view(name)
        layout = self.layouts.get(base)
        if layout is None or layout.identity:
            return raw
        return layout.cls_view(raw) if view == "cls" else layout.to_canonical(raw)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Activations of the tapped layers for ``images`` (N, 3, H, W) in [0, 1]."""
        self._acts = {}
        self._counts = {}
        if INPUT in self.layers:
            self._acts[INPUT] = images
        if not self.hooked and LOGITS not in self.layers:
            return self._acts  # only the input is read: the model need not run
        if tuple(images.shape[-2:]) != self._hw:
            self._prepare(images)  # also for logits alone: a network that rejects the size says so
        try:
            output = self.forward(images)
        except StopForward:
            pass
        else:
            if LOGITS in self.layers:
                self._acts[LOGITS] = output
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


def _replace(output, index: int | str | None, tensor: torch.Tensor):
    """``output`` with its tensor (at ``index`` of a plain tuple or list, or key ``index`` of a dict
    or model-output object) replaced, so that what runs next reads the views; None (keep the
    output) for other containers."""
    if index is None:
        return tensor
    if type(output) in (tuple, list):
        return type(output)([*output[:index], tensor, *output[index + 1:]])
    if isinstance(output, dict) and isinstance(index, str):
        output[index] = tensor  # a fresh object of this forward pass (HF ModelOutput keeps both views)
        return output
    return None
