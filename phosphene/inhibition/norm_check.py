"""Is ΣA = E⁺ - E⁻ ≈ f meaningful? Not when normalization sits between the layer and the target.

Attribution A = a ⊙ ∂f/∂a sums to f only when f is (close to) positively homogeneous in a along
the path from the attribution layer ℓ to the target layer L: ReLU networks and BatchNorm in eval
mode are. LayerNorm and GroupNorm divide by a statistic of a itself, so f(λa) = f(a) and ΣA is about
0 whatever f is (E⁺ = E⁻ on ConvNeXt and ViT blocks): the completeness figures then say nothing.

`normalizations_between` finds such modules by one recorded forward pass: those that finish running
after ℓ has produced its output and before L has. `completeness_warnings` turns them into one line
per attribution layer; tension and atlas show it next to their completeness figures.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..layers.names import INPUT, LOGITS, split_view
from ..layers.recording import execution_order
from ..models.wrapper import layer_root

NORMALIZATIONS = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.LocalResponseNorm)
_RMS = getattr(nn, "RMSNorm", None)
if _RMS is not None:
    NORMALIZATIONS = (*NORMALIZATIONS, _RMS)


def _is_norm(module: nn.Module) -> bool:
    # timm's LayerNorm2d / torchvision's LayerNorm2d subclass nn.LayerNorm; other libraries' own
    # LayerNorm classes are recognised by name
    return isinstance(module, NORMALIZATIONS) or type(module).__name__ in ("LayerNorm", "LayerNorm2d",
                                                                            "RMSNorm", "GroupNorm")


def normalizations_between(model: nn.Module, source: str, target: str,
                           order: Sequence[str] | None = None) -> list[str]:
    """The LayerNorm-like modules (see `NORMALIZATIONS`) that run after ``source`` (a layer or
    ``input``) has produced its output and before ``target`` (a layer or ``logits``) has; views
    (``NAME#cls``, ``ATTN#heads``) are their layer's."""
    order = list(order) if order is not None else execution_order(model)
    source, target = split_view(source)[0], split_view(target)[0]
    start = -1 if source == INPUT else (len(order) - 1 - order[::-1].index(source) if source in order
                                        else -1)
    end = len(order) if target == LOGITS or target not in order else order.index(target)
    modules = dict(layer_root(model).named_modules())
    return [name for name in order[start + 1:end] if _is_norm(modules[name])]


def completeness_warnings(model: nn.Module, target_layer: str, layers: Sequence[str]) -> dict[str, str]:
    """{attribution layer: a one-line warning} for the layers whose path to ``target_layer`` holds
    normalization (none: an empty dict)."""
    order = execution_order(model)
    warnings = {}
    for layer in layers:
        norms = normalizations_between(model, layer, target_layer, order)
        if norms:
            shown = ", ".join(norms[:3]) + (f" (+{len(norms) - 3} more)" if len(norms) > 3 else "")
            warnings[layer] = (f"normalization between {layer} and {target_layer} ({shown}): ΣA = E⁺ - E⁻ "
                               "need not equal f there, so its completeness is not meaningful")
    return warnings
