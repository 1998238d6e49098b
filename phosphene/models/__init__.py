"""Model registry: ``load_model(name)`` returns an `ImageModel` in eval mode taking [0,1] images.

Names: ``efficientnet_lite0`` (the embedded default), ``torchvision:<name>`` and ``timm:<name>``
(when those packages are installed; weights from their local cache or ``weights=FILE``), or any
``nn.Module`` passed from Python. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelLoadError
from ..install_hint import install_hint
from .efficientnet_lite import (
    LITE1_STAGES,
    LITE2_STAGES,
    EfficientNetLite,
    lite0_weights_path,
    lite_weights_path,
)
from .wrapper import ImageModel, Normalize, layer_root

__all__ = [
    "ImageModel", "Normalize", "layer_root", "load_model", "list_models", "imagenet_class_names",
    "register_model", "DEFAULT_MODEL",
]

DEFAULT_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_FACTORIES: dict[str, Callable[[str | None], ImageModel]] = {}


def register_model(name: str):
    """Decorator registering ``factory(weights_path_or_None) -> ImageModel`` under ``name``."""

    def decorate(factory: Callable[[str | None], ImageModel]):
        _FACTORIES[name] = factory
        return factory

    return decorate


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (shipped with the package)."""
    text = resources.files("phosphene.data").joinpath("imagenet_classes.txt").read_text()
    return text.splitlines()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` with a clear error for missing or unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot read weights file {path}: {type(exc).__name__}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"weights file {path} does not hold a state dict of tensors")
    return state


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)[:200]]
        raise ModelLoadError(f"weights in {source} do not fit the model: {first[0].strip()}") from exc


@register_model("efficientnet_lite0")
def _efficientnet_lite0(weights: str | None) -> ImageModel:
    net = EfficientNetLite()
    path = weights or lite0_weights_path()
    _load_into(net, read_state_dict(path), str(path))
    # The TF-trained checkpoint expects (x*255 - 127) / 128.
    return ImageModel(net, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, input_size=224,
                      class_names=imagenet_class_names(), name="efficientnet_lite0")


def _lite_variant(variant: int, stages, input_size: int, weights: str | None) -> ImageModel:
    net = EfficientNetLite(stages)
    if weights is None:
        try:
            weights = lite_weights_path(variant)
        except ImportError as exc:
            raise ModelLoadError(str(exc)) from exc
    _load_into(net, read_state_dict(weights), weights)
    return ImageModel(net, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, input_size=input_size,
                      class_names=imagenet_class_names(), name=f"efficientnet_lite{variant}")


@register_model("efficientnet_lite1")
def _efficientnet_lite1(weights: str | None) -> ImageModel:
    return _lite_variant(1, LITE1_STAGES, 240, weights)


@register_model("efficientnet_lite2")
def _efficientnet_lite2(weights: str | None) -> ImageModel:
    return _lite_variant(2, LITE2_STAGES, 260, weights)


def _torchvision_model(arch: str, weights: str | None) -> ImageModel:
    try:
        import torchvision
    except ImportError as exc:
        raise ModelLoadError(f"torchvision models need torchvision: {install_hint('torchvision')}") from exc
    try:
        net = torchvision.models.get_model(arch, weights=None)
    except ValueError as exc:
        raise ModelLoadError(f"torchvision has no model {arch!r}") from exc
    input_size = 224
    if weights is None:
        enum = torchvision.models.get_model_weights(arch).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)
        if not cached.is_file():
            raise ModelLoadError(
                f"no local weights for torchvision:{arch} (looked for {cached}); "
                "pass --weights FILE (phosphene never downloads)")
        weights = str(cached)
        input_size = enum.transforms().crop_size[0]
    _load_into(net, read_state_dict(weights), weights)
    return ImageModel(net, IMAGENET_MEAN, IMAGENET_STD, input_size,
                      imagenet_class_names(), f"torchvision:{arch}")


def _timm_model(arch: str, weights: str | None) -> ImageModel:
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(f"timm models need timm: {install_hint('timm')}") from exc
    if arch not in timm.list_models():
        raise ModelLoadError(f"timm has no model {arch!r}")
    if weights is not None:
        net = timm.create_model(arch, pretrained=False)
        _load_into(net, read_state_dict(weights), weights)
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            net = timm.create_model(arch, pretrained=True)
        except Exception as exc:
            raise ModelLoadError(
                f"no local weights for timm:{arch}; pass --weights FILE (phosphene never downloads)"
            ) from exc
    cfg = net.pretrained_cfg
    classes = imagenet_class_names() if cfg.get("num_classes", 1000) == 1000 else None
    return ImageModel(net, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD),
                      cfg.get("input_size", (3, 224, 224))[-1], classes, f"timm:{arch}")


def list_models() -> list[str]:
    """Registered model names plus the ``torchvision:`` / ``timm:`` prefixes that are available."""
    names = sorted(_FACTORIES)
    for prefix in ("torchvision", "timm"):
        try:
            __import__(prefix)
            names.append(f"{prefix}:<name>")
        except ImportError:
            pass
    return names


def load_model(
    model: str | nn.Module = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> ImageModel:
    """Return an `ImageModel` in eval mode: (N, 3, H, W) images in [0, 1] in, logits out.

    ``model`` is a registered name, ``torchvision:<arch>``, ``timm:<arch>``, or an ``nn.Module``
    (used as is when it is already an `ImageModel`, else wrapped with identity preprocessing).
    ``weights`` is a state-dict file replacing the default weights.
    """
    weights = str(weights) if weights is not None else None
    if isinstance(model, ImageModel):
        wrapped = model
    elif isinstance(model, nn.Module):
        if weights is not None:
            _load_into(model, read_state_dict(weights), weights)
        wrapped = ImageModel(model, name=type(model).__name__)
    elif model in _FACTORIES:
        wrapped = _FACTORIES[model](weights)
    elif model.startswith("torchvision:"):
        wrapped = _torchvision_model(model.split(":", 1)[1], weights)
    elif model.startswith("timm:"):
        wrapped = _timm_model(model.split(":", 1)[1], weights)
    else:
        import difflib
        close = difflib.get_close_matches(model, list(_FACTORIES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"unknown model {model!r}{hint} (known: {', '.join(list_models())})")
    wrapped.eval().requires_grad_(False)
    if device is not None:
        wrapped.to(device)
    return wrapped
