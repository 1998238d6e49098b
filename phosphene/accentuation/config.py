"""`AccentuationConfig`: the settings of one `accentuate` call (faccent's defaults).

``accentuate(model, f, x0, config)`` takes one, and any of its fields as keywords
(``accentuate(model, f, x0, reg_layer="_blocks.8", lam=[0, 1], steps=64)``). Bad values are a
one-line `PhospheneError` when the config is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import PhospheneError
from ..layers.precision import check_precision
from .balance import BALANCES, STYLES


@dataclass
class AccentuationConfig:
    """The settings of `accentuate` (recorded in ``AccentuationResult.settings``).

    - ``reg_layer``: layer of the latent regularization R ("input" for pixel space; default: a block
      before the objective's layer at about half its depth, `default_reg_layer`: ``_blocks.8`` for a
      class of EfficientNet-Lite0).
    - ``lam``: the regularization weight, or a sequence of weights (one accentuation each, one batch).
    - ``steps``, ``lr``: Adam steps and learning rate (faccent: 100, 0.05).
    - ``crops``, ``crop_side``, ``noise``: views per step, crop side range (fraction of the canvas),
      noise std.
    - ``canvas``: image side (default: the seeds' side); ``input_size``: the crops' side (default:
      the model's input size).
    - ``param``: "phase" (faccent's seeded magnitude-gated phase), "fourier" or "pixel".
    - ``mask``: None, "attribution" (confine changes to where f is attributed, `attribution_mask`),
      or an (N, 1, H, W) tensor in [0, 1].
    - ``seed``: RNG seed of every random draw.
    - ``transparency_every``: accumulate |df/dx| for the mask every this many steps (0: |dL/dx|).
    - ``measure_crops``: crops of the fixed draw on which R before/after is measured.
    - ``balance_by``: how beta is set at step 0: "params" (faccent's balance, equal gradient L1 norms
      w.r.t. the parameterization's parameters, so that lam means what it means in faccent) or
      "image" (equal norms w.r.t. the image's pixels: the same beta for every parameterization).
    - ``fold``: fold BatchNorm layers that neither f nor R reads into their convolutions (`render`).
    - ``precision``: the model's forward in the loop: "fp32", "bf16" (autocast; CUDA and CPU) or
      "fp16" (autocast with loss scaling; CUDA only); the image parameters stay float32
      (`layers.precision`). The balance step and the final measurement run in float32.
    - ``compile``: torch.compile the loop's truncated forward (eager, with a warning, if it fails).
    - ``style``: "faccent": the optimization as faccent runs it, so that lam means faccent's lam (its
      step-0 image, 0.7 % below the seed's contrast, and logit clamp for the phase parameterization;
      its integer crops with noise at the crop's resolution, `boxes`); "phosphene": start exactly at
      the seed, continuous crops in one warp, per-pixel noise (at the same lam, closer to the seed
      and less gain; docs/accentuation.md).
    """

    reg_layer: str | None = None
    lam: float | Sequence[float] = 1.0
    steps: int = 100
    crops: int = 16
    crop_side: tuple[float, float] = (0.05, 0.99)
    noise: float = 0.02
    canvas: int | None = None
    input_size: int | None = None
    param: str = "phase"
    mask: str | torch.Tensor | None = None
    lr: float = 0.05
    seed: int = 0
    transparency_every: int = 4
    measure_crops: int = 16
    balance_by: str = "params"
    fold: bool = True
    style: str = "faccent"
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        lambdas(self.lam)
        check_precision(self.precision)
        if self.steps < 1 or self.crops < 1:
            raise PhospheneError("steps and crops must be at least 1")
        if self.balance_by not in BALANCES:
            raise PhospheneError(f"unknown balance {self.balance_by!r}; use one of {', '.join(BALANCES)}")
        if self.style not in STYLES:
            raise PhospheneError(f"unknown style {self.style!r}; use one of {', '.join(STYLES)}")

    @property
    def lams(self) -> list[float]:
        """``lam`` as a list of floats."""
        return lambdas(self.lam)

    def mask_name(self) -> str | None:
        """``mask`` as recorded in the settings ("tensor" for a tensor)."""
        return self.mask if isinstance(self.mask, str) or self.mask is None else "tensor"


def lambdas(lam: float | Sequence[float]) -> list[float]:
    """``lam`` as a list of floats; `PhospheneError` unless they are finite and >= 0."""
    lams = [float(lam)] if isinstance(lam, (int, float)) else [float(v) for v in lam]
    if not lams or any(v < 0 or not math.isfinite(v) for v in lams):
        raise PhospheneError(f"lambdas must be finite and >= 0, got {lams}")
    return lams
