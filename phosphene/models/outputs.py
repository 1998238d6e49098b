"""The logits of a model's output when the network returns a dict, a tuple or an output object.

`logits_of` is what the class objectives read: a tensor as is; otherwise the declared key, else the
one obvious candidate (a ``logits`` key or attribute, or the only tensor), else a one-line error
naming the keys there are and how to declare one. `with_output` declares the key for one call
without changing the user's model.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from ..errors import PhospheneError
from .wrapper import ImageModel, OutputKey, select_output

HOW = "declare it with output_key=KEY (render) or load_model(model, output=KEY)"


def _entries(result: object) -> dict[str, object]:
    """name -> value of a dict, a tuple/list (by index) or an object with tensor attributes."""
    if isinstance(result, Mapping):
        return {str(k): v for k, v in result.items()}
    if isinstance(result, (tuple, list)):
        fields = getattr(result, "_fields", None)  # namedtuples: by field name
        return dict(zip(fields, result)) if fields else {str(i): v for i, v in enumerate(result)}
    return {k: v for k, v in vars(result).items() if isinstance(v, torch.Tensor)} if hasattr(
        result, "__dict__") else {}


def logits_of(result: object, key: OutputKey = None) -> torch.Tensor:
    """The logits tensor in a model's ``result`` (see the module docstring)."""
    if isinstance(result, torch.Tensor):
        return result
    if key is not None:
        return select_output(result, key)
    entries = _entries(result)
    if isinstance(entries.get("logits"), torch.Tensor):
        return entries["logits"]
    tensors = [v for v in entries.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1:
        return tensors[0]
    names = ", ".join(repr(k) for k in entries) or "none"
    raise PhospheneError(f"the model returns a {type(result).__name__} (keys: {names}), not one logits "
                         f"tensor; {HOW}")


def with_output(model: nn.Module, key: OutputKey) -> nn.Module:
    """``model`` reading its logits from ``key``: an `ImageModel` copy sharing the network (the
    user's model is unchanged); ``model`` itself when ``key`` is None."""
    if key is None:
        return model
    if isinstance(model, ImageModel):
        view = copy.copy(model)  # shares the network, its hooks and parameters
        view.output = key
        return view
    return ImageModel(model, name=type(model).__name__, output=key)
