"""Model registry: ``load_model(name)`` returns an `ImageModel` in eval mode taking [0,1] images.

Names: ``efficientnet_lite0`` (the embedded default), ``efficientnet_lite1/2``, ``inceptionv1``
(lucid's), ``torchvision:<arch>[.<WEIGHTS>]`` and ``timm:<arch>[.<tag>]`` (when those packages are
installed), or any ``nn.Module`` passed from Python. Weights come from ``weights=FILE`` or from the
library's own cache (torch.hub's, the Hugging Face Hub's), downloaded there when absent unless offline
(``offline=True``, ``PHOSPHENE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ModelLoadError
from .checkpoints import (
    cached_download,
    hub_checkpoint_path,
    is_offline,
    load_into,
    odd_weights_allowed,
    read_state_dict,
)
from .classes import imagenet_class_names
from .device import pick_device
from .efficientnet_lite import (
    LITE1_STAGES,
    LITE2_STAGES,
    EfficientNetLite,
    lite0_weights_path,
    lite_weights_path,
)
from .inception_v1 import INPUT_SIZE as INCEPTION_V1_SIZE
from .inception_v1 import LUCID_OFFSET, WEIGHTS_URL, InceptionV1
from .preprocess import ImageSpec
from .timm_zoo import load_timm
from .torchvision_zoo import load_torchvision
from .wrapper import ImageModel, Normalize, OutputKey, as_image_model, layer_root, model_side

__all__ = [
    "ImageModel", "ImageSpec", "Normalize", "as_image_model", "layer_root", "model_side", "load_model",
    "list_models", "imagenet_class_names", "register_model", "read_state_dict", "is_offline", "DEFAULT_MODEL",
]

DEFAULT_MODEL = "efficientnet_lite0"

_FACTORIES: dict[str, Callable[..., ImageModel]] = {}


def register_model(name: str):
    """Decorator registering ``factory(weights_path_or_None) -> ImageModel`` under ``name``; a
    factory that may download also takes ``offline`` (True, False or None for the environment's)."""

    def decorate(factory: Callable[[str | None], ImageModel]):
        _FACTORIES[name] = factory
        return factory

    return decorate


@register_model("efficientnet_lite0")
def _efficientnet_lite0(weights: str | None) -> ImageModel:
    net = EfficientNetLite()
    path = weights or lite0_weights_path()
    load_into(net, read_state_dict(path), str(path))
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
    load_into(net, read_state_dict(weights), weights)
    return ImageModel(net, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, input_size=input_size,
                      class_names=imagenet_class_names(), name=f"efficientnet_lite{variant}")


@register_model("efficientnet_lite1")
def _efficientnet_lite1(weights: str | None) -> ImageModel:
    return _lite_variant(1, LITE1_STAGES, 240, weights)


@register_model("efficientnet_lite2")
def _efficientnet_lite2(weights: str | None) -> ImageModel:
    return _lite_variant(2, LITE2_STAGES, 260, weights)


@register_model("inceptionv1")
def _inceptionv1(weights: str | None, offline: bool | None = None) -> ImageModel:
    """lucid's InceptionV1; weights from ``weights``, else lucent's torch-hub file ``inception5h.pth``."""
    if weights is None:
        cached = hub_checkpoint_path(WEIGHTS_URL)
        if not cached.is_file() and is_offline(offline):
            raise ModelLoadError(
                f"no weights for inceptionv1 at {cached} (where lucent keeps them) and offline mode "
                f"forbids downloading; fill it with `phosphene download inceptionv1` or by downloading "
                f"{WEIGHTS_URL} there, or pass --weights inception5h.pth")
        weights = str(cached_download(WEIGHTS_URL, "inceptionv1", offline))
    net = InceptionV1()
    load_into(net, read_state_dict(weights), weights)
    return ImageModel(net, mean=(LUCID_OFFSET / 255,) * 3, std=(1 / 255,) * 3, input_size=INCEPTION_V1_SIZE,
                      class_names=None, name="inceptionv1", interpolation="bilinear")


def list_models() -> list[str]:
    """Registered model names plus the ``torchvision:`` / ``timm:`` forms that are available."""
    names = sorted(_FACTORIES)
    for prefix, form in (("torchvision", "torchvision:<arch>[.<WEIGHTS>]"), ("timm", "timm:<arch>[.<tag>]")):
        if importlib.util.find_spec(prefix) is not None:  # without importing it (timm is slow)
            names.append(form)
    return names


def load_model(
    model: str | nn.Module = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    offline: bool | None = None,
    output: OutputKey = None,
    allow_odd_weights: bool = False,
) -> ImageModel:
    """Return an `ImageModel` in eval mode: (N, 3, H, W) images in [0, 1] in, logits out.

    ``model`` is a registered name, ``torchvision:<arch>[.<WEIGHTS>]``, ``timm:<arch>[.<tag>]``, or
    an ``nn.Module`` (used as is when it is already an `ImageModel`, else wrapped with identity
    preprocessing; a Hugging Face ``transformers`` vision model gets its input size, channels and
    class names from its config, see `as_image_model`). ``weights`` is a weights file (state
    dict, training checkpoint or safetensors) replacing the default weights. ``offline`` forbids
    downloads (None: ``PHOSPHENE_OFFLINE`` / ``HF_HUB_OFFLINE``). ``output`` selects the logits
    from a network returning a dict, tuple or output object (key, index or attribute name).
    Weights that cannot be a trained network's (NaN, Inf, integers where the model has floats:
    `checkpoints.odd_weights`) are a `ModelLoadError` unless ``allow_odd_weights``.
    """
    weights = str(weights) if weights is not None else None
    if allow_odd_weights:
        with odd_weights_allowed():
            return load_model(model, weights, device, offline, output)
    if isinstance(model, ImageModel):
        wrapped = model
    elif isinstance(model, nn.Module):
        if weights is not None:
            load_into(model, read_state_dict(weights), weights)
        wrapped = as_image_model(model)
    elif model in _FACTORIES:
        factory = _FACTORIES[model]
        takes_offline = "offline" in inspect.signature(factory).parameters
        wrapped = factory(weights, offline=offline) if takes_offline else factory(weights)
    elif model.startswith("torchvision:"):
        wrapped = load_torchvision(model.split(":", 1)[1], weights, offline)
    elif model.startswith("timm:"):
        wrapped = load_timm(model.split(":", 1)[1], weights, offline)
    else:
        close = difflib.get_close_matches(model, list(_FACTORIES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"unknown model {model!r}{hint} (known: {', '.join(list_models())})")
    if output is not None:
        wrapped.output = output
    wrapped.eval().requires_grad_(False)
    return wrapped.to(pick_device(device))
