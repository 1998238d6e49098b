"""Excitatory / inhibitory attribution of a target unit through earlier layers (METHODS §3).

For a target f (channel c of layer L: its mean over positions, or its value at one position; the
pre-activation when L is an activation module such as ``_blocks.8._relu1``, whose input is
``_blocks.8._bn1``) and an earlier layer ℓ with activation a (C, H, W) per image:

    A = a ⊙ ∂f/∂a,   E⁺ = Σ ReLU(A),   E⁻ = Σ ReLU(-A),   E⁺ - E⁻ = ΣA ≈ f
    L2 variant: E⁺₂ = Σ_positions ‖ReLU(A)[:, y, x]‖₂ (and E⁻₂ likewise)
    maps:       φ⁺ = Σ_c a·ReLU(g),  φ⁻ = Σ_c a·ReLU(-g)  per position, g = ∂f/∂a

``input`` as ℓ attributes to the [0, 1] pixels. The forward pass is cut after L (`LayerTap`), and
every batch element is its own image (eval-mode BatchNorm), so one backward of Σf gives all images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .errors import PhospheneError, UnitOutOfRangeError
from .layers.names import INPUT, LOGITS, check_layers, resolve_layer
from .layers.tap import LayerTap
from .models.wrapper import as_image_model
from .objectives import Acts, Objective, evaluate
from .units import Unit, as_unit, parse_unit

SUM_ZERO = 1e-2  # mean |ΣA| below 1 % of mean |f|: ΣA ≈ 0, completeness does not hold
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish,
               nn.Mish, nn.Softplus, nn.Sigmoid, nn.Tanh, nn.PReLU)
POSITIONS = ("mean", "centre")


Target = Unit  # the name before issue 9; a unit is `phosphene.units.Unit` (or "layer:channel")
parse_target = parse_unit  # likewise: "layer:channel" or "layer:channel@y,x" -> `Unit`


@dataclass
class LayerAttribution:
    """Per-image sums for one attribution layer: each (N,); maps (N, H, W) when requested."""

    e_plus: torch.Tensor
    e_minus: torch.Tensor
    e_plus_l2: torch.Tensor
    e_minus_l2: torch.Tensor
    total: torch.Tensor
    phi_plus: torch.Tensor | None = None
    phi_minus: torch.Tensor | None = None
    vector: torch.Tensor | None = None  # (N, C) A summed over positions, with keep=True
    attribution: torch.Tensor | None = None  # (N, C, H, W) A itself, with keep=True
    activation: torch.Tensor | None = None  # (N, C, H, W) a, with keep=True
    gradient: torch.Tensor | None = None  # (N, C, H, W) g = ∂f/∂a, with keep=True


@dataclass
class AttributionResult:
    """``f`` (N,) target values and one `LayerAttribution` per attribution layer."""

    target: Unit | Objective
    f: torch.Tensor
    layers: dict[str, LayerAttribution] = field(default_factory=dict)


def uses_preactivation(model: nn.Module, target: Unit) -> bool:
    """True when the target is read at the input of an activation module."""
    if not target.preactivation or target.layer in (INPUT, LOGITS):
        return False
    return isinstance(resolve_layer(model, target.layer), ACTIVATIONS)


def keep_preactivation(module: nn.Module, keep: Callable[[torch.Tensor], None]) -> RemovableHandle:
    """Hook ``module`` (an activation) so that ``keep(x)`` gets its input ``x`` on every call. An
    in-place activation (``ReLU(inplace=True)``) is handed a copy, so ``x`` keeps the pre-activation."""

    def hook(_module, inputs):
        keep(inputs[0])
        if getattr(_module, "inplace", False) and isinstance(inputs[0], torch.Tensor):
            return (inputs[0].clone(), *inputs[1:])
        return None

    return module.register_forward_pre_hook(hook)


def _reduce(values: torch.Tensor, target: Unit) -> torch.Tensor:
    """(N, C, H, W) or (N, C) -> (N,) value of the target channel."""
    if not 0 <= target.channel < values.shape[1]:
        raise UnitOutOfRangeError(f"channel {target.channel} out of range: {target.layer} has "
                                  f"{values.shape[1]} channels")
    channel = values[:, target.channel]
    if channel.dim() == 1:
        return channel
    if target.position == "mean":
        return channel.mean(dim=(1, 2))
    h, w = channel.shape[-2:]
    y, x = (h // 2, w // 2) if target.position == "centre" else target.position
    if not (0 <= y < h and 0 <= x < w):
        raise PhospheneError(f"position {(y, x)} outside the {h}x{w} grid of {target.layer}")
    return channel[:, y, x]


def layer_sums(a: torch.Tensor, g: torch.Tensor, maps: bool = False, keep: bool = False) -> LayerAttribution:
    """E⁺, E⁻ (L1 and per-position L2), ΣA and optionally φ⁺/φ⁻ from activations and gradients
    ``a``, ``g`` (N, C, H, W) or (N, C)."""
    if a.dim() == 2:
        a, g = a[:, :, None, None], g[:, :, None, None]
    attribution = a * g
    positive, negative = attribution.clamp(min=0), (-attribution).clamp(min=0)
    result = LayerAttribution(
        e_plus=positive.sum(dim=(1, 2, 3)), e_minus=negative.sum(dim=(1, 2, 3)),
        e_plus_l2=positive.norm(dim=1).sum(dim=(1, 2)), e_minus_l2=negative.norm(dim=1).sum(dim=(1, 2)),
        total=attribution.sum(dim=(1, 2, 3)))
    if keep:
        result.attribution = attribution
        result.activation = a
        result.gradient = g
        result.vector = attribution.sum(dim=(2, 3))
    if maps:
        result.phi_plus = (a * g.clamp(min=0)).sum(dim=1)
        result.phi_minus = (a * (-g).clamp(min=0)).sum(dim=1)
    return result


class Attributor:
    """Reusable hooks for attributing ``target`` through ``layers`` of ``model``; call with batches.

    ``target`` is a unit (`Unit` or "layer:channel", read before its activation function when
    ``preactivation``) or any `Objective` (f is then the objective's value per image)."""

    def __init__(self, model: nn.Module, target: Unit | Objective | str, layers: Sequence[str]):
        self.model, self.layers = model, list(dict.fromkeys(layers))
        self.target = target if isinstance(target, Objective) else as_unit(target)
        if not self.layers:
            raise PhospheneError("give at least one attribution layer")
        reads = sorted(self.target.layers) if isinstance(self.target, Objective) else [self.target.layer]
        self._pre: torch.Tensor | None = None
        self._handle = None
        if isinstance(self.target, Unit):
            _check_unit(model, self.target, self.layers)
            if uses_preactivation(model, self.target):
                module = resolve_layer(model, self.target.layer)
                self._handle = keep_preactivation(module, self._keep_input)
        check_layers(model, [*reads, *self.layers])
        self.tap = LayerTap(model, [*reads, *self.layers], truncate=True)

    def _keep_input(self, value: torch.Tensor) -> None:
        self._pre = value

    def __call__(self, images: torch.Tensor, maps: bool = False, keep: bool = False) -> AttributionResult:
        """Attribute a batch ``images`` (N, 3, H, W) in [0, 1]."""
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self._pre = None
            acts = self.tap(x)
            f = self._f(acts)
            grads = torch.autograd.grad(f.sum(), [acts[n] for n in self.layers], allow_unused=True)
        result = AttributionResult(self.target, f.detach())
        for name, a, g in zip(self.layers, (acts[n] for n in self.layers), grads):
            if g is None:
                raise PhospheneError(f"attribution layer {name} does not come before the target "
                                     f"{_name(self.target)} in the forward pass (it is not upstream of it)")
            result.layers[name] = layer_sums(a.detach(), g, maps, keep)
        return result

    def _f(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(self.target, Objective):
            return evaluate(self.target, Acts(acts)).float()
        if self._handle is not None:  # the activation's input, laid out as its output
            return _reduce(self.tap.canonical(self.target.layer, self._pre), self.target)
        return _reduce(acts[self.target.layer], self.target)

    def close(self) -> None:
        self.tap.close()
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> Attributor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_unit(model: nn.Module, target: Unit, layers: Sequence[str]) -> None:
    if target.position not in POSITIONS and not isinstance(target.position, tuple):
        raise PhospheneError(f"position must be one of {POSITIONS} or (y, x), got {target.position!r}")
    check_layers(model, [target.layer, *layers])
    if target.layer in layers:
        raise PhospheneError(f"attribution layer {target.layer} is the target layer itself")


def _name(target: Unit | Objective) -> str:
    return target.name if isinstance(target, Objective) else target.layer


def completeness_scale(total, f) -> float:
    """mean |ΣA| / mean |f| over images (``total``, ``f`` (N,) arrays or tensors): about 1 when
    ΣA ≈ f; near 0 when ΣA vanishes whatever f is (a LayerNorm between the layer and the target
    makes f(λa) = f(a), so ΣA ≡ 0 and a correlation of its round-off with f can still read 0.98)."""
    total = torch.as_tensor(total, dtype=torch.float64).abs().mean()
    return float(total / torch.as_tensor(f, dtype=torch.float64).abs().mean().clamp_min(1e-30))


def sum_zero_warning(layer: str, scale: float) -> str | None:
    """The one-line warning when ΣA through ``layer`` is about 0 (``scale`` < `SUM_ZERO`)."""
    if scale >= SUM_ZERO:
        return None
    return (f"ΣA through {layer} is about 0 (mean |ΣA| = {scale:.1e} x mean |f|): attribution there does "
            "not add up to f, whatever its correlation with f")


def concat(results: Sequence[AttributionResult]) -> AttributionResult:
    """Join batch results along the image axis."""
    first = results[0]
    out = AttributionResult(first.target, torch.cat([r.f for r in results]))
    for name in first.layers:
        parts = [r.layers[name] for r in results]
        fields = {}
        for key in ("e_plus", "e_minus", "e_plus_l2", "e_minus_l2", "total", "phi_plus", "phi_minus",
                    "vector", "attribution", "activation", "gradient"):
            values = [getattr(p, key) for p in parts]
            fields[key] = None if values[0] is None else torch.cat(values)
        out.layers[name] = LayerAttribution(**fields)
    return out


def attribute(model: nn.Module, images: torch.Tensor, target: Unit | Objective | str, layers: Sequence[str],
              batch_size: int = 16, maps: bool = False, keep: bool = False) -> AttributionResult:
    """E⁺/E⁻ attribution of ``target`` through ``layers`` for ``images`` (N, 3, H, W) in [0, 1].

    Returns f (N,) and per layer E⁺, E⁻, their L2 variants and ΣA (each (N,)); with ``maps`` also
    φ⁺, φ⁻ (N, H_ℓ, W_ℓ); with ``keep`` also A, a and g (N, C, H_ℓ, W_ℓ) and A summed over positions.
    """
    model = as_image_model(model)
    with Attributor(model, target, layers) as attributor:
        results = [attributor(images[i:i + batch_size].to(model.device), maps, keep)
                   for i in range(0, len(images), batch_size)]
    return concat(results)
