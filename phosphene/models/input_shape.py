"""What a model's input must look like: its channel count and, for fixed-input models, its side.

- `input_channels`: 3 for RGB models, 1 for grayscale ones, any C: an `ImageModel`'s declared
  ``channels``, else the ``in_channels`` of the first convolution (or patch embedding) of the network.
- `fixed_input_size`: the one side a model accepts, or None when any reasonable side works (CNNs):
  an `ImageModel`'s declared ``fixed_size``; vision transformers with a fixed patch grid
  (torchvision's ``VisionTransformer.image_size``, timm's ``patch_embed.img_size`` with
  ``strict_img_size`` and no ``dynamic_img_size``); timm models whose config says
  ``fixed_input_size`` (LeViT and EfficientFormer: attention biases of one size; MaxViT, Swin:
  window grids); Hugging Face ``transformers`` models with a ``config.image_size`` and an
  ``interpolate_pos_encoding`` switch (ViT, CLIP; DINOv2 interpolates, so it takes any side). When
  the candidate sides disagree (a timm model built with another ``img_size`` keeps its
  pretrained config's), the first one the network runs at is taken (`probe.runs_at`, once per model).
"""

from __future__ import annotations

import inspect
import weakref

import torch
from torch import nn

from ..errors import PhospheneError
from .probe import runs_at

_PROBED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> side found by probing


def _root(model: nn.Module) -> nn.Module:
    return getattr(model, "net", model) if hasattr(model, "spec") else model


def input_channels(model: nn.Module) -> int:
    """Channels of the images ``model`` takes: its declared ``channels``, else the first
    convolution's ``in_channels``, else 3."""
    declared = getattr(model, "channels", None)
    if isinstance(declared, int) and declared > 0:
        return declared
    return first_conv_channels(_root(model)) or 3


def first_conv_channels(net: nn.Module) -> int | None:
    """``in_channels`` of the first convolution registered in ``net`` (None when there is none)."""
    for module in net.modules():
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
            return int(module.in_channels)
    return None


def _side(value) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
        return int(value[0]) if all(v == value[0] for v in value) else None
    return None


def fixed_input_size(model: nn.Module) -> int | None:
    """The only image side ``model`` accepts, or None when it takes any side (see module doc)."""
    declared = getattr(model, "fixed_size", None)
    if isinstance(declared, int):
        return declared
    root = _root(model)
    if getattr(root, "dynamic_img_size", False):  # timm ViTs built with dynamic_img_size=True
        return None
    for module in root.modules():
        if type(module).__name__ == "VisionTransformer" and hasattr(module, "patch_size"):
            side = _side(getattr(module, "image_size", None))  # torchvision
            if side:
                return side
        if getattr(module, "strict_img_size", False) and not getattr(module, "dynamic_img_size", False):
            side = _side(getattr(module, "img_size", None))  # timm's PatchEmbed
            if side:
                return side
    candidates = _configured_sides(model, root)
    if not candidates:
        return None
    if len(set(candidates)) == 1:
        return candidates[0]
    if root not in _PROBED:
        channels = input_channels(model)
        _PROBED[root] = next((s for s in dict.fromkeys(candidates) if runs_at(model, s, channels)),
                             candidates[0])
    return _PROBED[root]


def _configured_sides(model: nn.Module, root: nn.Module) -> list[int]:
    """Sides a model's configuration fixes (timm's ``fixed_input_size``, a Hugging Face vision
    config with an ``interpolate_pos_encoding`` switch), the network's own first: its ``img_size``,
    then the wrapper's input size, then the configured one; empty when nothing fixes the side."""
    cfg = getattr(root, "pretrained_cfg", None) or getattr(root, "default_cfg", None)
    config = getattr(root, "config", None)
    if isinstance(cfg, dict) and cfg.get("fixed_input_size"):
        configured = _side(tuple(cfg.get("input_size", ()))[-2:])
    elif _side(getattr(config, "image_size", None)) and "interpolate_pos_encoding" in _parameters(root):
        configured = _side(getattr(config, "image_size", None))
    else:
        return []
    own = [_side(getattr(root, "img_size", None)),
           _side(getattr(getattr(root, "patch_embed", None), "img_size", None)),
           getattr(model, "input_size", None) if model is not root else None, configured]
    return [side for side in own if isinstance(side, int) and side > 0]


def _parameters(module: nn.Module) -> set[str]:
    try:
        return set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return set()


def fit_side(images: torch.Tensor, side: int | None) -> torch.Tensor:
    """``images`` (N, C, H, W) resized (antialiased bilinear) to side x side; as is when ``side`` is
    None or already the size."""
    if side is None or tuple(images.shape[-2:]) == (side, side):
        return images
    return torch.nn.functional.interpolate(images, size=(side, side), mode="bilinear", antialias=True,
                                           align_corners=False)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, c, H, W) or (c, H, W) images with ``channels`` channels: RGB -> gray by BT.601 luma (as
    PIL's ``convert("L")``), gray -> RGB by repetition; as is when they already match."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
        return (images * weights).sum(-3, keepdim=True)
    if have == 1:
        return images.expand(*images.shape[:-3], channels, *images.shape[-2:]).contiguous()
    raise PhospheneError(f"cannot turn {have}-channel images into the model's {channels} channels")
