"""``timm:<arch>[.<tag>]``: timm models with their pretrained config, weights from timm's own caches.

Weights are looked up without network first: the Hugging Face Hub cache (``model.safetensors``, then
``pytorch_model.bin`` of the config's ``hf_hub_id``) or, for configs that only have a URL, torch.hub's
checkpoint cache. A cached file is handed to ``timm.create_model`` (``pretrained_cfg_overlay={"file":
...}``), so timm applies its own checkpoint filter and nothing is downloaded. Otherwise, when not
offline, ``timm.create_model(pretrained=True)`` downloads into those caches as timm always does.
The offline check never calls into huggingface_hub's download code, so it holds whenever
huggingface_hub read ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, install_hint
from .checkpoints import hub_checkpoint_path, is_offline, load_into, offline_error, read_state_dict
from .classes import imagenet_class_names
from .wrapper import ImageModel

HF_FILENAMES = ("model.safetensors", "pytorch_model.bin")  # timm's order of preference
IMAGENET_CLASSES = 1000


def _import_timm():
    try:
        import timm
    except ImportError as exc:
        raise ModelLoadError(f"timm models need timm: {install_hint('timm')}") from exc
    return timm


def check_name(timm: Any, spec: str) -> None:
    """`ModelLoadError` unless timm knows the architecture and, when given, the pretrained tag."""
    if spec.startswith(("hf-hub:", "local-dir:")):
        raise ModelLoadError(f"timm:{spec}: Hub-repository names are not supported; use timm:<arch> with "
                             "--weights FILE (the repository's model.safetensors)")
    arch, _, tag = spec.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"timm has no model {arch!r}{hint}")
    if tag and spec not in timm.list_pretrained(f"{arch}.*"):
        tags = [name.partition(".")[2] for name in timm.list_pretrained(f"{arch}.*")]
        raise ModelLoadError(f"timm has no weights {tag!r} for {arch} (tags: {', '.join(tags) or 'none'})")


def _hf_cached(hf_hub_id: str, filename: str | None) -> tuple[Path | None, str]:
    """(the cached file or None, the cache folder) for a Hub repo, without any network access."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo, _, revision = hf_hub_id.partition("@")
    for name in ([filename] if filename else HF_FILENAMES):
        found = try_to_load_from_cache(repo, name, revision=revision or None)
        if isinstance(found, str):
            return Path(found), constants.HF_HUB_CACHE
    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    return None, str(folder)


def cached_weights(cfg: dict[str, Any]) -> tuple[Path | None, str]:
    """(the cached weight file or None, where it would be) for a timm pretrained config."""
    if cfg.get("hf_hub_id"):
        return _hf_cached(cfg["hf_hub_id"], cfg.get("hf_hub_filename"))
    if cfg.get("url"):
        path = hub_checkpoint_path(cfg["url"])
        return (path if path.is_file() else None), str(path)
    return None, "nowhere (timm has no pretrained weights for it)"


def _pretrained(timm: Any, spec: str, offline: bool | None):
    name = f"timm:{spec}"
    cfg = timm.models.get_pretrained_cfg(spec)
    cfg = cfg.to_dict() if cfg is not None else {}
    cached, where = cached_weights(cfg)
    if cached is not None:
        return timm.create_model(spec, pretrained=True, pretrained_cfg_overlay={"file": str(cached)})
    if is_offline(offline):
        raise offline_error(name, where, name)
    try:
        return timm.create_model(spec, pretrained=True)
    except Exception as exc:
        raise ModelLoadError(f"could not download weights for {name} ({type(exc).__name__}: "
                             f"{str(exc)[:120]}); cache: {where}; or pass --weights FILE") from exc


def load_timm(spec: str, weights: str | None, offline: bool | None) -> ImageModel:
    """`ImageModel` for ``timm:<spec>`` (``arch`` or ``arch.tag``) with the config's preprocessing."""
    timm = _import_timm()
    check_name(timm, spec)
    if weights is not None:
        net = timm.create_model(spec, pretrained=False)
        load_into(net, read_state_dict(weights), weights)
    else:
        net = _pretrained(timm, spec, offline)
    cfg = net.pretrained_cfg
    size = cfg.get("input_size", (3, 224, 224))[-1]
    interpolation = cfg.get("interpolation", "bicubic")
    classes = None
    if getattr(net, "num_classes", cfg.get("num_classes")) == IMAGENET_CLASSES:
        classes = imagenet_class_names()
    return ImageModel(net, cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225)),
                      size, classes, f"timm:{spec}",
                      resize_size=math.floor(size / cfg.get("crop_pct", 0.875)),
                      interpolation=interpolation if interpolation in ("bilinear", "bicubic") else "bicubic")
