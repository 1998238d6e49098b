"""Mixed precision for the optimizing loops: ``precision="fp32" | "bf16" | "fp16"``.

The parameters (the image parameterization) and the optimizer stay in float32 ("master" parameters);
the warp and FFTs run in float32 too. Only the model's forward pass runs under ``torch.autocast``:

- ``fp32``: no autocast (the default).
- ``bf16``: bfloat16 autocast, on CUDA and on the CPU (bfloat16 has float32's range: no loss scaling).
- ``fp16``: float16 autocast with a ``torch.amp.GradScaler`` (loss scaling, so that small gradients do
  not flush to zero); CUDA only: elsewhere it is a one-line `PhospheneError` (use bf16). With the
  default optimizer the loop then uses Adam's fused CUDA kernel, which takes the scaler's inf check
  on the device, so that a step still makes no host synchronisation.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable

import torch

from ..errors import PhospheneError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(name: str) -> str:
    """``name`` if it is one of `PRECISIONS`; else a `PhospheneError` naming the close match."""
    if name not in PRECISIONS:
        close = difflib.get_close_matches(str(name), PRECISIONS, n=1, cutoff=0.3)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise PhospheneError(f"unknown precision {name!r}: use one of {', '.join(PRECISIONS)}{hint}")
    return name


def resolve_precision(name: str, amp: bool = False) -> str:
    """The precision a loop runs at: ``name``, or bf16 when the older ``amp`` flag is set."""
    check_precision(name)
    return "bf16" if amp and name == "fp32" else name


class Precision:
    """How one loop on ``device`` runs at precision ``name``: its autocast context and, for fp16,
    its loss scaler. `backward_step` replaces ``loss.backward(); optimizer.step()``."""

    def __init__(self, name: str, device: torch.device):
        self.name, self.device = check_precision(name), torch.device(device)
        if name == "fp16" and self.device.type != "cuda":
            raise PhospheneError(f"precision fp16 needs a CUDA device (it scales the loss); on "
                                 f"{self.device.type} use bf16 or fp32")
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` at this precision (a null context at fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.name])

    def adam(self, lr: float) -> Callable[..., torch.optim.Optimizer]:
        """The default optimizer factory: Adam with torch's fused kernel (on CUDA at fp16 it takes the
        scaler's inf check on the device; on the CPU one step of a 16-image 160-px spectrum costs
        0.8 ms instead of 4.6 ms). Falls back to the plain Adam where the fused one is refused."""

        def factory(params):
            params = list(params)
            try:
                return torch.optim.Adam(params, lr=lr, fused=True)
            except (RuntimeError, TypeError):
                if self.scaler is not None:
                    raise
                return torch.optim.Adam(params, lr=lr)

        return factory

    def unscale(self, grad: torch.Tensor) -> torch.Tensor:
        """A gradient of the scaled loss as the gradient of the loss (non-finite values: 0)."""
        if self.scaler is None:
            return grad
        grad = grad / self.scaler._scale  # the scale as a device tensor: get_scale() would sync
        return torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward pass and optimizer step; through the loss scaler at fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
