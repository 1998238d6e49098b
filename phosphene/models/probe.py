"""One forward pass of a network with its own hooks set aside: does it take images of a given side?

`hooks_suspended` removes every module's hooks for the duration of a block (a `LayerTap` must not
see a probe or recording pass); `runs_at` tries one image of a side without gradients, in eval mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
              "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
              "_backward_hooks", "_backward_pre_hooks")


@contextlib.contextmanager
def hooks_suspended(model: nn.Module) -> Iterator[None]:
    """Run with every module's own hooks removed (a `LayerTap` must not see the probe pass)."""
    saved = []
    for module in model.modules():
        for attr in HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                saved.append((module, attr, hooks))
                setattr(module, attr, type(hooks)())
    try:
        yield
    finally:
        for module, attr, hooks in saved:
            setattr(module, attr, hooks)


def runs_at(model: nn.Module, side: int, channels: int = 3) -> bool:
    """True when ``model`` runs on one grey (1, channels, side, side) image (eval mode, no gradient,
    hooks set aside; the modules' training flags are restored)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    try:
        with hooks_suspended(model), torch.no_grad():
            model.eval()
            model(torch.full((1, channels, side, side), 0.5, device=device))
        return True
    except Exception:  # noqa: BLE001 - any failure means: not this side
        return False
    finally:
        for module, mode in modes:
            module.training = mode
