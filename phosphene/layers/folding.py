"""Fold eval-mode BatchNorm into the preceding convolution for the duration of a call.

A frozen network computes ``bn(conv(x)) = (s * W) x + (beta + s * (b - mean))`` with
``s = gamma / sqrt(var + eps)``: one convolution with a folded weight and bias does the same work
without the BatchNorm's forward and backward passes. `fold_batchnorm` finds such pairs in any
model by a recorded pass on a small input (module-pair matching in execution order) and, for the
duration of a ``with`` block, swaps the folded weights into the convolution and an ``Identity``
into the BatchNorm's place. On exit (also after an exception) the original parameter objects and
modules are put back, so the user's model and its ``state_dict`` are exactly as before.

A pair is folded only when all of these hold: the BatchNorm is in eval mode with running
statistics; both modules run exactly once and are registered once; the BatchNorm's input is the
very tensor the convolution returned, unmodified (same object, same version counter) and used by
nothing else (one consumer in the autograd graph); neither module is read (a layer of the call's
objective, distance or attribution) nor carries hooks of its own; and the folded convolution
reproduces ``bn(conv(x))`` on the recorded input. Everything else is left alone, so the context
is a no-op for a model without foldable pairs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils import parametrize

from ..models.probe import HOOK_DICTS, hooks_suspended
from .names import SPECIAL_LAYERS, resolve_layer


@dataclass
class FoldedPair:
    """One folded Conv -> BatchNorm pair (names as in the model's ``named_modules()``)."""

    conv_name: str
    bn_name: str


@dataclass
class _Record:
    conv_name: str
    bn_name: str
    conv: _ConvNd
    bn: _BatchNorm
    conv_input: torch.Tensor | None


def _has_hooks(module: nn.Module) -> bool:
    return any(getattr(module, attr, None) for attr in HOOK_DICTS)


def _consumers(outputs: list[torch.Tensor]) -> Counter:
    """How many times each autograd node is an input of another node in the graph of ``outputs``."""
    refs: Counter = Counter()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen = set(stack)
    while stack:
        node = stack.pop()
        for parent, _ in node.next_functions:
            if parent is None:
                continue
            refs[parent] += 1
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return refs


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def find_pairs(model: nn.Module, size: int = 64, device: torch.device | str = "cpu",
               skip: Iterable[nn.Module] = ()) -> list[_Record]:
    """Conv -> BatchNorm pairs of ``model`` that can be folded (see the module docstring), found
    by one recorded forward pass of a (1, 3, size, size) input; modules in ``skip`` are never used."""
    skipped = {id(m) for m in skip}
    names = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    convs = {m: n for n, m in model.named_modules() if isinstance(m, _ConvNd) and not m.transposed}
    bns = {m: n for n, m in model.named_modules() if isinstance(m, _BatchNorm)}
    if not convs or not bns:
        return []
    calls: Counter = Counter()
    conv_io: dict[nn.Module, tuple] = {}
    bn_in: dict[nn.Module, tuple] = {}

    def conv_hook(module, inputs, output):
        calls[module] += 1
        conv_io[module] = (inputs[0].detach(), output, output._version)

    def bn_hook(module, inputs):
        calls[module] += 1
        bn_in[module] = (inputs[0], inputs[0]._version)

    eligible = {m for m in list(convs) + list(bns)
                if id(m) not in skipped and names[id(m)] == 1 and not _has_hooks(m)}
    with hooks_suspended(model):
        handles = [m.register_forward_hook(conv_hook) for m in convs if m in eligible]
        handles += [m.register_forward_pre_hook(bn_hook) for m in bns if m in eligible]
        try:
            x = torch.full((1, 3, size, size), 0.5, device=device, requires_grad=True)
            with torch.enable_grad():
                refs = _consumers(_tensors(model(x)))
        finally:
            for handle in handles:
                handle.remove()
    by_output = {id(io[1]): conv for conv, io in conv_io.items() if calls[conv] == 1}
    pairs = []
    for bn, (tensor, version) in bn_in.items():
        conv = by_output.get(id(tensor))
        if (conv is None or calls[bn] != 1 or bn.training or bn.running_mean is None
                or bn.running_var is None or parametrize.is_parametrized(conv)):
            continue
        conv_input, output, conv_version = conv_io[conv]
        if output is tensor and version == conv_version and refs[output.grad_fn] == 1:
            pairs.append(_Record(convs[conv], bns[bn], conv, bn, conv_input))
    return pairs


@torch.no_grad()
def folded_parameters(conv: _ConvNd, bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the convolution equal to ``bn(conv(x))`` (computed in float64)."""
    weight = conv.weight.double()
    scale = bn.weight.double() if bn.affine else torch.ones_like(bn.running_var, dtype=torch.float64)
    scale = scale / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() if bn.affine else torch.zeros_like(scale)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded_w = weight * scale.reshape(-1, *[1] * (weight.dim() - 1))
    folded_b = shift + (bias - bn.running_mean.double()) * scale
    return (folded_w.to(conv.weight.dtype).contiguous(memory_format=_format(conv.weight)),
            folded_b.to(conv.weight.dtype))


def _format(weight: torch.Tensor) -> torch.memory_format:
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
        if not weight.is_contiguous():
            return torch.channels_last
    return torch.contiguous_format


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, attr = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


@contextlib.contextmanager
def fold_batchnorm(model: nn.Module, read: Iterable[str] = (), size: int = 224,
                   device: torch.device | str | None = None, enabled: bool = True
                   ) -> Iterator[list[FoldedPair]]:
    """Fold every foldable Conv -> eval BatchNorm pair of ``model`` for the ``with`` block.

    ``read`` lists the layers the call reads (names as for `LayerTap`); those modules keep their
    own computation; ``size`` is the call's image side (the probe pass runs at most 64 px, the
    call's size if the model rejects that). Yields the folded pairs (empty when nothing folds or
    ``enabled`` is False).
    Enter it after `frozen` (eval mode) and before creating the call's `LayerTap`.
    """
    if not enabled or any(m.training for m in model.modules()):  # a training-mode probe would
        yield []  # update BatchNorm statistics; calls fold inside `frozen` (eval mode)
        return
    skip = [resolve_layer(model, name) for name in read if name not in SPECIAL_LAYERS]
    if device is None:
        device = next((t.device for t in list(model.parameters()) + list(model.buffers())), "cpu")
    candidates = []
    for side in dict.fromkeys((min(size, 64), size)):  # a small probe first, then the call's size
        try:
            candidates = find_pairs(model, side, device, skip)
            break
        except Exception:  # a model that cannot run this input: try the next, else leave it be
            continue
    restore: list = []
    try:
        for rec in candidates:
            saved = (rec.conv, rec.conv._parameters["weight"], rec.conv._parameters.get("bias"))
            with torch.no_grad():
                expected = rec.bn(rec.conv(rec.conv_input))
                weight, bias = folded_parameters(rec.conv, rec.bn)
                rec.conv._parameters["weight"] = nn.Parameter(weight, requires_grad=False)
                rec.conv._parameters["bias"] = nn.Parameter(bias, requires_grad=False)
                got = rec.conv(rec.conv_input)
            rec.conv_input = None
            tol = 1e-4 * float(expected.abs().max()) + 1e-5
            if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=tol):
                _put_back(*saved)  # e.g. a convolution whose forward ignores its bias
                continue
            parent, attr = _parent(model, rec.bn_name)
            restore.append((saved, parent, attr, rec))
            parent._modules[attr] = nn.Identity()
        del candidates
        yield [FoldedPair(rec.conv_name, rec.bn_name) for *_, rec in restore]
    finally:
        for saved, parent, attr, rec in reversed(restore):
            parent._modules[attr] = rec.bn
            _put_back(*saved)
        restore.clear()


def _put_back(conv: _ConvNd, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
    conv._parameters["weight"] = weight
    conv._parameters["bias"] = bias
