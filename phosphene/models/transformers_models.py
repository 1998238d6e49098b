"""Hugging Face ``transformers`` vision models passed as modules (ViT, DINOv2, CLIP's vision tower).

`is_transformers_model` recognises them without importing transformers (a ``config`` with a
``model_type`` and ``main_input_name == "pixel_values"``); `transformers_facts` gives the
`ImageModel` arguments `as_image_model` wraps them with: input side and channels from the config,
class names from ``config.id2label`` when they are names (not ``LABEL_0``...). Their outputs are
``ModelOutput`` objects: the class objectives read the ``logits`` entry by themselves; a model
without a head (``Dinov2Model``, ``CLIPVisionModel``) returns ``last_hidden_state`` /
``pooler_output``, which ``load_model(model, output="pooler_output")`` selects. The preprocessing
(mean, std) belongs to the model's image processor, not its config: pass it as
``phosphene.ImageModel(net, mean=..., std=...)`` (identity here). Whether the model takes one input
side only: `input_shape.fixed_input_size`.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def is_transformers_model(module: nn.Module) -> bool:
    """True for a ``transformers`` vision model (a ``PreTrainedModel`` taking ``pixel_values``)."""
    config = getattr(module, "config", None)
    return getattr(module, "main_input_name", None) == "pixel_values" and hasattr(config, "model_type")


def _side(value, default: int = 224) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
        return int(value[0])
    return default


def _class_names(config) -> list[str] | None:
    labels = getattr(config, "id2label", None) or {}
    names = [str(labels.get(i, labels.get(str(i), ""))) for i in range(len(labels))]
    if not names or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def transformers_facts(net: nn.Module) -> dict[str, Any]:
    """`ImageModel` keyword arguments for a ``transformers`` vision model (see the module docstring)."""
    config = net.config
    channels = getattr(config, "num_channels", 3) or 3
    return {"mean": (0.0,) * channels, "std": (1.0,) * channels,
            "input_size": _side(getattr(config, "image_size", None)), "class_names": _class_names(config),
            "name": f"transformers:{type(net).__name__}"}
