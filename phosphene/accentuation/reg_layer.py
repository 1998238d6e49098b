"""The default layer of an accentuation's latent regularization: a block before the target, at about
half its depth.

faccent regularizes at a middle layer of the network (EfficientNet-Lite0: ``_blocks.8``, the ninth of
its sixteen blocks). For any model, `candidate_blocks` lists the network's blocks in order:

1. the block type: the composite children (modules with submodules) of the ``nn.Sequential`` /
   ``nn.ModuleList`` holding the most of them (ties: the one whose children are the largest),
   Lite0's ``_blocks``, a ViT's ``blocks``, a Swin stage's ``blocks``; then the composite children
   of every container holding a block of that type, so that blocks split over stages (Swin, ConvNeXt,
   ResNet-50, LeViT) are all listed;
2. when no container holds `MIN_BLOCKS`, the composite children of the network itself (GoogLeNet,
   ResNet-18: ``layer1``...);
3. else the convolutions, else every module with parameters of its own (VGG).

`default_reg_layer` keeps the blocks that finish strictly before the target (the objective's
earliest layer in execution order; all of them for ``logits``) and takes the middle one: about half
the target's depth (``_blocks.8`` for a Lite0 class, ``blocks.3`` for a ViT's ``blocks.6``; blocks
inside the target do not count). When the blocks of rule 1 do not run on past the target (a stem's
convolutions), the composite modules beside the path down to the target take their place
(``stem``, ``stages.0``, ``stages.1.downsample`` for a small LeViT's ``stages.1.blocks.0``). A
``reg_layer`` the model declares (lucid's InceptionV1: ``mixed4c``) is taken when it is before the
target. With nothing composite before the target, the middle convolution before it, else ``input``.
`reg_layer_problem` says when a chosen layer does not run before the target.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..layers.names import INPUT, LOGITS, split_view
from ..layers.recording import execution_order
from ..models.wrapper import layer_root

MIN_BLOCKS = 4


def _composite(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _containers(root: nn.Module) -> list[tuple[str, list[tuple[str, nn.Module]]]]:
    """(name, composite children) of every Sequential / ModuleList, children named in full."""
    found = []
    for name, module in root.named_modules():
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            children = [(f"{name}.{child}" if name else child, sub) for child, sub in module.named_children()
                        if _composite(sub)]
            if children:
                found.append((name, children))
    return found


def _blocks(root: nn.Module) -> list[str]:
    """Rule 1 of the module docstring."""
    containers = _containers(root)
    if not containers:
        return []
    size = lambda children: (len(children), sum(len(list(m.modules())) for _, m in children))  # noqa: E731
    _, best = max(containers, key=lambda item: size(item[1]))
    if len(best) < MIN_BLOCKS:
        return []
    kinds = {type(m) for _, m in best}
    names: list[str] = []
    for _, children in containers:
        if any(type(m) in kinds for _, m in children):
            names += [n for n, _ in children if n not in names]
    nested = {n for n in names if any(n.startswith(f"{other}.") for other in names)}
    return [n for n in names if n not in nested]


def candidate_blocks(model: nn.Module) -> list[str]:
    """The layer names `default_reg_layer` chooses among for the whole network (see the module
    docstring), in registration order."""
    root = layer_root(model)
    blocks = _blocks(root)
    if len(blocks) >= MIN_BLOCKS:
        return blocks
    children = [name for name, child in root.named_children() if _composite(child)]
    if len(children) >= MIN_BLOCKS:
        return children
    return _fine(root)


def _beside_path(root: nn.Module, target: str) -> list[str]:
    """The composite modules beside the path from the network down to ``target``: the siblings of
    the target and of each module enclosing it (LeViT's ``stem``, ``stages.0``, ...)."""
    modules = dict(root.named_modules())
    parts = target.split(".")
    found = []
    for depth in range(len(parts)):
        parent, on_path = ".".join(parts[:depth]), ".".join(parts[:depth + 1])
        for child, module in (modules[parent].named_children() if parent in modules else ()):
            name = f"{parent}.{child}" if parent else child
            if name != on_path and _composite(module):
                found.append(name)
    return found


def _fine(root: nn.Module) -> list[str]:
    convs = [name for name, module in root.named_modules() if isinstance(module, nn.modules.conv._ConvNd)]
    return convs or [name for name, module in root.named_modules()
                     if name and next(module.parameters(recurse=False), None) is not None]


def _before(names: list[str], order: list[str], end: int, target: str | None) -> list[str]:
    """``names`` that finish before position ``end`` of ``order``, in execution order, without the
    modules enclosing ``target`` or inside it."""
    first = {}
    for index, name in enumerate(order):
        first.setdefault(name, index)
    inside = lambda a, b: b is not None and (a.startswith(f"{b}.") or b.startswith(f"{a}."))  # noqa: E731
    kept = [n for n in names if first.get(n, end) < end and n != target and not inside(n, target)]
    return sorted(kept, key=first.__getitem__)


def _target_end(order: list[str], targets: Iterable[str]) -> tuple[int, str | None]:
    """(position in ``order`` where the earliest target layer finishes, that layer)."""
    ends = [(order.index(base), base) for base in (split_view(t)[0] for t in targets)
            if base not in (INPUT, LOGITS) and base in order]
    return min(ends) if ends else (len(order), None)


def default_reg_layer(model: nn.Module, targets: Iterable[str] = ()) -> str:
    """A block that finishes before the target layers ``targets`` (the objective's layers; none or
    ``logits``: the whole network) at about half their depth; ``input`` when there is none."""
    inner = [t for t in targets if split_view(t)[0] not in (INPUT, LOGITS)]
    root = layer_root(model)
    if inner:  # a recorded pass says what runs before the target
        order = execution_order(model)
        end, target = _target_end(order, inner)
        before = lambda names: _before(names, order, end, target)  # noqa: E731
        blocks = _blocks(root)
        if not any(n in order and order.index(n) >= end or target.startswith(f"{n}.") for n in blocks):
            blocks = []  # they all end before the target: not the network's depth (a stem's parts)
        lists = [blocks, _beside_path(root, target), _fine(root)]
    else:
        before, lists = list, [candidate_blocks(model), _fine(root)]
    for owner in (model, root):
        declared = getattr(owner, "reg_layer", None)
        if isinstance(declared, str) and before([declared]):
            return declared
    for names in lists:
        kept = before(names)
        if kept:
            return kept[len(kept) // 2]
    return INPUT


def reg_layer_problem(model: nn.Module, reg_layer: str, targets: Iterable[str]) -> str | None:
    """A one-line warning when ``reg_layer`` does not finish before the target layers (R then does
    not constrain what f is computed from), else None."""
    inner = [t for t in targets if split_view(t)[0] not in (INPUT, LOGITS)]
    if reg_layer == INPUT or not inner:
        return None
    order = execution_order(model)
    end, target = _target_end(order, inner)
    if _before([split_view(reg_layer)[0]], order, end, target):
        return None
    return (f"the regularization layer {reg_layer} does not run before the target {target}: R there "
            "does not keep what f is computed from close to the seed; choose an earlier --reg-layer")
