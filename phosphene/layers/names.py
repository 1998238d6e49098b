"""Layer names: how phosphene addresses the layers of a network.

Layers are named as in ``named_modules()`` of the network (see `layer_root`), plus two special names:
``"logits"`` (the model's output) and ``"input"`` (the [0,1] image the model receives). A name may end
in a view: ``NAME#cls`` (the class token of a transformer layer) or ``ATTN#heads`` (attention heads).
An unknown name is a `LayerNotFoundError` listing the closest names.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..errors import LayerNotFoundError, PhospheneError
from ..models.wrapper import layer_root
from .heads import check_attention

LOGITS = "logits"
INPUT = "input"
SPECIAL_LAYERS = (INPUT, LOGITS)
VIEWS = ("cls", "heads")  # LAYER#cls: the class token; ATTN#heads: attention heads (see heads.py)


def layer_names(model: nn.Module) -> list[str]:
    """All addressable layer names of ``model`` (its ``named_modules()`` minus the root)."""
    return [name for name, _ in layer_root(model).named_modules() if name]


def split_view(name: str) -> tuple[str, str | None]:
    """``"blocks.6#cls"`` -> ("blocks.6", "cls"); a plain name -> (name, None)."""
    base, sep, view = name.partition("#")
    return (base, view) if sep else (name, None)


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` (for a view ``NAME#cls`` / ``NAME#heads``, the module ``NAME``);
    `LayerNotFoundError` with the closest names if there is none."""
    base, view = split_view(name)
    if view is not None and view not in VIEWS:
        raise PhospheneError(f"unknown view {name!r}: a layer name may end in #cls or #heads")
    modules = dict(layer_root(model).named_modules())
    if base and base in modules:
        if view == "heads":
            check_attention(modules[base], base)
        return modules[base]
    raise LayerNotFoundError(name, list(SPECIAL_LAYERS) + [n for n in modules if n])


def check_layers(model: nn.Module, names: Iterable[str]) -> None:
    """Raise `LayerNotFoundError` for the first name in ``names`` the model does not have."""
    for name in names:
        if name not in SPECIAL_LAYERS:
            resolve_layer(model, name)
