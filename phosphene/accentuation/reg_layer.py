"""The default layer of an accentuation's latent regularization: a block at about half depth.

faccent regularizes at a middle layer of the network (EfficientNet-Lite0: ``_blocks.8``, the ninth of
its sixteen blocks). For any model, `default_reg_layer` picks the block at index ``len // 2`` of the
first of these lists that has at least `MIN_BLOCKS` entries, unless the model (or its network)
declares a ``reg_layer`` attribute (lucid's InceptionV1: ``mixed4c``):

1. the composite children (modules with submodules) of the ``nn.Sequential`` / ``nn.ModuleList``
   holding the most of them: Lite0 ``_blocks`` -> ``_blocks.8``, timm ViT ``blocks`` -> ``blocks.6``,
   torchvision ViT ``encoder.layers`` -> ``encoder.layers.encoder_layer_6``, ResNet-50 ``layer3.3``;
2. the composite children of the network itself (GoogLeNet: ``inception4b``);
3. the convolutions, else every module with parameters of its own (VGG: the middle convolution).
"""

from __future__ import annotations

from torch import nn

from ..layers.names import INPUT
from ..models.wrapper import layer_root

MIN_BLOCKS = 4


def _composite(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _largest_container(root: nn.Module) -> list[str]:
    best: list[str] = []
    for name, module in root.named_modules():
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            blocks = [f"{name}.{child}" if name else child
                      for child, sub in module.named_children() if _composite(sub)]
            if len(blocks) > len(best):
                best = blocks
    return best


def candidate_blocks(model: nn.Module) -> list[str]:
    """The layer names `default_reg_layer` chooses among (see the module docstring)."""
    root = layer_root(model)
    blocks = _largest_container(root)
    if len(blocks) >= MIN_BLOCKS:
        return blocks
    children = [name for name, child in root.named_children() if _composite(child)]
    if len(children) >= MIN_BLOCKS:
        return children
    convs = [name for name, module in root.named_modules() if isinstance(module, nn.modules.conv._ConvNd)]
    return convs or [name for name, module in root.named_modules()
                     if name and next(module.parameters(recurse=False), None) is not None]


def default_reg_layer(model: nn.Module) -> str:
    """The layer at about half the depth of ``model`` (``_blocks.8`` for EfficientNet-Lite0);
    ``input`` for a model without layers."""
    for owner in (model, layer_root(model)):
        declared = getattr(owner, "reg_layer", None)
        if isinstance(declared, str):
            return declared
    blocks = candidate_blocks(model)
    return blocks[len(blocks) // 2] if blocks else INPUT
