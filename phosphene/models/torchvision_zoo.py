"""``torchvision:<arch>[.<WEIGHTS>]``: torchvision classifiers built with their weights enum.

The enum (``torchvision.models.get_model_weights(arch)``, ``DEFAULT`` unless a member is named)
decides the class count, GoogLeNet/Inception-v3's ``transform_input=True``, a ViT's image size and the
preprocessing (crop, resize, interpolation, mean/std) — also when the weights come from ``--weights
FILE``. Without a file, the enum's checkpoint is taken from torch.hub's cache
($TORCH_HOME/hub/checkpoints), downloaded there first by torch.hub when it is absent and not offline.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..errors import ModelLoadError, install_hint
from .checkpoints import cached_download, load_into, read_state_dict
from .wrapper import ImageModel

# Auxiliary heads: built without them, and their keys in a checkpoint are ignored.
AUX_HEADS = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's densenet checkpoints use the pre-0.4 key names ("norm.1"); its loader renames them.
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean"
                           r"|running_var|num_batches_tracked))$")


def _import_torchvision():
    try:
        import torchvision
    except ImportError as exc:
        raise ModelLoadError(f"torchvision models need torchvision: {install_hint('torchvision')}") from exc
    return torchvision


def weights_enum(tv: Any, arch: str, tag: str | None):
    """The weights-enum member for ``arch`` (``tag`` or ``DEFAULT``), None if torchvision has none."""
    if arch not in tv.models.list_models():
        close = difflib.get_close_matches(arch, tv.models.list_models(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"torchvision has no model {arch!r}{hint}")
    try:
        members = tv.models.get_model_weights(arch)
    except (ValueError, KeyError):
        members = None
    if tag is None:
        return members.DEFAULT if members is not None else None
    if members is None or tag not in members.__members__:
        known = ", ".join(members.__members__) if members is not None else "none"
        raise ModelLoadError(f"torchvision:{arch} has no weights {tag!r} (known: {known})")
    return members[tag]


def builder_kwargs(arch: str, enum) -> dict[str, Any]:
    """The architecture arguments torchvision's builder derives from ``enum``, without its weights."""
    if enum is None:
        return {}
    kwargs: dict[str, Any] = {"num_classes": len(enum.meta["categories"])}
    if arch in AUX_HEADS:
        kwargs.update(transform_input=True, aux_logits=False, init_weights=False)
    if arch.startswith("vit_"):
        kwargs["image_size"] = enum.meta["min_size"][0]
    if arch.startswith("maxvit"):
        kwargs["input_size"] = enum.meta["min_size"]
    return kwargs


def _rename_densenet_keys(state: dict) -> dict:
    return {(_DENSENET_KEY.sub(r"\1\2", k)): v for k, v in state.items()}


def _preprocessing(enum) -> dict[str, Any]:
    """ImageModel keyword arguments (mean, std, input/resize size, interpolation) from the enum."""
    if enum is None:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "input_size": 224, "interpolation": "bilinear"}
    preset = enum.transforms()
    return {"mean": tuple(preset.mean), "std": tuple(preset.std), "input_size": preset.crop_size[0],
            "resize_size": preset.resize_size[0], "interpolation": preset.interpolation.value}


def load_torchvision(spec: str, weights: str | None, offline: bool | None) -> ImageModel:
    """`ImageModel` for ``torchvision:<spec>``; ``spec`` is ``arch`` or ``arch.WEIGHTS_MEMBER``."""
    tv = _import_torchvision()
    arch, _, tag = spec.partition(".")
    enum = weights_enum(tv, arch, tag or None)
    name = f"torchvision:{spec}"
    if weights is not None:
        net = tv.models.get_model(arch, weights=None, **builder_kwargs(arch, enum))
        state = read_state_dict(weights)
        if arch.startswith("densenet"):
            state = _rename_densenet_keys(state)
        load_into(net, state, weights, AUX_HEADS.get(arch, ()))
    elif enum is None:
        raise ModelLoadError(f"torchvision has no weights for {arch!r}: pass --weights FILE")
    else:
        cached_download(enum.url, name, offline)  # torchvision's builder then reads the cached file
        try:
            net = tv.models.get_model(arch, weights=enum)
        except RuntimeError as exc:
            raise ModelLoadError(f"cached weights for {name} do not load ({str(exc)[:160]}); delete the "
                                 "file and run `phosphene download` again") from exc
    categories = enum.meta.get("categories") if enum is not None else None
    model = ImageModel(net, class_names=categories, name=name, **_preprocessing(enum))
    if arch.startswith("maxvit") and enum is not None:  # its attention grids fix the input side
        model.fixed_size = enum.meta["min_size"][0]
    return model
