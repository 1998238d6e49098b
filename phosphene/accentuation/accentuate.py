"""Feature accentuation (Hamblin, Fel et al. 2024): image-seeded feature visualization.

``accentuate(model, f, seeds, reg_layer)`` maximizes

    f(x) - lam * beta * R(x),   R(x) = mean over crops T and positions of ||a_l(T x) - a_l(T x0)||_2

(the L2 norm over the channels of layer l), starting from the seed x0 (`SeededPhaseImage`). Each step
draws ``crops`` random square crops per seed (`SharedCrops`); the seed goes through the *same* crops
and noise, and its activations are computed without gradient and only up to l. beta is set once, per
seed, to sum|df/dx| / sum|dR/dx| (equal gradient L1 norms). Several lambdas are one batched call:
each seed is repeated once per lambda, and the copies share their crops.

The optimization is the core `render` loop: the seeded parameterization is its ``param``, the shared
crops its ``transforms``, and f - lam beta R one `Objective` (`_Accentuation`) that also accumulates
|df/dx| for the transparency mask.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..errors import PhospheneError
from ..io.images import atomic_write_bytes, image_grid, save_image
from ..layers.folding import fold_batchnorm
from ..layers.model_state import frozen, model_device
from ..layers.names import check_layers
from ..models.input_shape import fixed_input_size, input_channels, to_channels
from ..objectives import Acts, Objective
from ..param import ConfinedImage, seeded_param
from ..render import RenderConfig, Renderer, as_objective
from .balance import BALANCES, STYLES, balance
from .crops import LatentDistance, SharedCrops, measure, resize
from .masks import attribution_mask, transparency_mask
from .reg_layer import default_reg_layer


class _Accentuation:
    """The objective `render` maximizes: f - weight * R per view row, plus its bookkeeping.

    Every ``every`` steps it also takes |df/dx| w.r.t. the images (one extra backward pass) and
    accumulates it for the transparency mask; it records f and R per step (views averaged).
    """

    def __init__(self, objective: Objective, distance: LatentDistance, weights: torch.Tensor,
                 image: ConfinedImage, every: int):
        self.objective, self.distance, self.weights, self.image = objective, distance, weights, image
        self.every = every
        self.step = 0
        self.saliency: torch.Tensor | None = None
        self.f_history: list[torch.Tensor] = []
        self.r_history: list[torch.Tensor] = []

    def __call__(self, acts: Acts) -> torch.Tensor:
        f_rows = self.objective(acts).float()
        r_rows = self.distance(acts)
        weights = self.weights.repeat_interleave(f_rows.shape[0] // self.weights.shape[0])
        if f_rows.requires_grad:  # an optimization step (not the final, no-grad evaluation)
            if self.every and self.step % self.every == 0:
                (grad,) = torch.autograd.grad(f_rows.sum(), self.image.last, retain_graph=True)
                grad = grad.detach().abs()
                self.saliency = grad if self.saliency is None else self.saliency + grad
            copies = getattr(acts, "copies", 1)
            self.f_history.append(f_rows.detach().view(-1, copies).mean(1))
            self.r_history.append(r_rows.detach().view(-1, copies).mean(1))
            self.step += 1
        return f_rows - weights * r_rows


# -- results ------------------------------------------------------------------------------------
FIGURE_NOTE = ("columns: seed (f: objective) | accentuation | the accentuation over dark, weighted by "
               "its transparency |df/dx| (R: distance to the seed at the reg. layer) | change x - x0 "
               "amplified (grey: none; p99: 99th percentile of |change| in 8-bit levels)")
@dataclass
class AccentuationResult:
    """What `accentuate` returns; tensors on the CPU. M = N seeds x L lambdas, rows (seed, lambda)."""

    images: torch.Tensor  # (M, 3, H, W) accentuations in [0, 1]
    seeds: torch.Tensor  # (N, 3, H, W)
    lams: list[float]
    labels: list[str]  # (M,) objective label of each row
    f_before: torch.Tensor  # (M,) objective of the seed (see `measure`)
    f_after: torch.Tensor  # (M,) objective of the accentuation
    r_before: torch.Tensor  # (M,) R of the seed (0)
    r_after: torch.Tensor  # (M,) R of the accentuation, latent distance to the seed
    beta: torch.Tensor  # (N,) balance set at step 0
    mask: torch.Tensor  # (M, 1, H, W) transparency in [0, 1] from accumulated |df/dx|
    attribution: torch.Tensor | None  # (N, 1, H, W) spatial mask that confined the changes
    f_history: torch.Tensor  # (steps, M) f per step, on the crops
    r_history: torch.Tensor  # (steps, M) R per step, on the crops
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def gain(self) -> torch.Tensor:
        """(M,) f_after - f_before."""
        return self.f_after - self.f_before

    def seed_of(self, row: int) -> torch.Tensor:
        """The seed (3, H, W) of accentuation ``row``."""
        return self.seeds[row // len(self.lams)]

    def figure(self) -> Image.Image:
        """One row per accentuation: seed | accentuation | accentuation through its transparency |
        amplified difference.

        The third panel is the accentuation over dark, weighted by the transparency ``mask``
        (accumulated |df/dx|), not a binary mask. The difference is shown as 0.5 + 0.5 * (x - x0) / q,
        q the 99th percentile of |x - x0| of the row; its caption gives the gain 0.5 / q and q in 8-bit
        levels, so a change too small to see in the accentuation itself shows as a small q."""
        panels, captions = [], []
        for row in range(self.images.shape[0]):
            seed, image, alpha = self.seed_of(row), self.images[row], self.mask[row]
            overlay = image * alpha + 0.1 * (1 - alpha)
            delta = image - seed
            q = float(torch.quantile(delta.abs().flatten(), 0.99).clamp_min(1e-4))
            lam = self.lams[row % len(self.lams)]
            panels += [seed, image, overlay, (0.5 + 0.5 / q * delta).clamp(0, 1)]
            captions += [f"seed f={self.f_before[row]:.2f}",
                         f"lam={lam:g} f={self.f_after[row]:.2f}",
                         f"by |df/dx| R={self.r_after[row]:.2f}",
                         f"diff x{0.5 / q:.0f} p99 {255 * q:.0f}/255"]
        return image_grid(panels, captions, columns=4, note=FIGURE_NOTE)

    def record(self, files: Sequence[str] = ()) -> dict[str, Any]:
        """A JSON-ready summary: settings, and f, R, gain per accentuation."""
        rows = []
        for row in range(self.images.shape[0]):
            rows.append({
                "label": self.labels[row], "seed": row // len(self.lams),
                "lam": self.lams[row % len(self.lams)], "beta": float(self.beta[row // len(self.lams)]),
                "f_before": float(self.f_before[row]), "f_after": float(self.f_after[row]),
                "gain": float(self.gain[row]), "r_before": float(self.r_before[row]),
                "r_after": float(self.r_after[row]),
                **({"file": files[row]} if files else {}),
            })
        return {"settings": self.settings, "seconds": round(self.seconds, 3), "accentuations": rows}

    def save(self, out_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Write one PNG per accentuation, figure.png and accentuate.json; returns the JSON."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for row, image in enumerate(self.images):
            stem = names[row // len(self.lams)] if names else f"seed{row // len(self.lams):03d}"
            name = f"{stem}_lam{self.lams[row % len(self.lams)]:g}.png"
            save_image(image, out / name)
            files.append(name)
        self.figure().save(out / "figure.png")
        record = self.record(files)
        record["figure"] = "figure.png"
        atomic_write_bytes(out / "accentuate.json", json.dumps(record, indent=2).encode())
        return record


# -- the method ---------------------------------------------------------------------------------
def _as_seeds(images: torch.Tensor, canvas: int | None, channels: int = 3) -> torch.Tensor:
    seeds = images.unsqueeze(0) if images.dim() == 3 else images
    if seeds.dim() != 4 or seeds.shape[1] not in (1, 3, channels):
        raise PhospheneError(f"seed images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    seeds = to_channels(seeds, channels)  # RGB seeds for a grayscale model become gray
    if seeds.shape[-1] != seeds.shape[-2] and canvas is None:
        raise PhospheneError("seed images must be square (load them with load_image(path, size))")
    return resize(seeds.float().clamp(0, 1), canvas) if canvas else seeds.float().clamp(0, 1)


def _seed_batch(model: nn.Module, objective: Objective, images: torch.Tensor, reg_layer: str,
                canvas: int | None) -> torch.Tensor:
    """The seed images as an (N, 3, S, S) batch, after checking the layers and the unit count."""
    check_layers(model, set(objective.layers) | {reg_layer})
    seeds = _as_seeds(images, canvas, input_channels(model))
    n = seeds.shape[0]
    if objective.batch_size not in (None, 1, n):
        raise PhospheneError(f"the objective has {objective.batch_size} units for {n} seed images")
    return seeds


def _lambdas(lam: float | Sequence[float], steps: int, crops: int) -> list[float]:
    lams = [float(lam)] if isinstance(lam, (int, float)) else [float(v) for v in lam]
    if not lams or any(v < 0 or not math.isfinite(v) for v in lams):
        raise PhospheneError(f"lambdas must be finite and >= 0, got {lams}")
    if steps < 1 or crops < 1:
        raise PhospheneError("steps and crops must be at least 1")
    return lams


def accentuate(
    model: nn.Module,
    objective: Objective | str,
    images: torch.Tensor,
    reg_layer: str | None = None,
    lam: float | Sequence[float] = 1.0,
    steps: int = 100,
    crops: int = 16,
    crop_side: tuple[float, float] = (0.05, 0.99),
    noise: float = 0.02,
    canvas: int | None = None,
    input_size: int | None = None,
    param: str = "phase",
    mask: str | torch.Tensor | None = None,
    lr: float = 0.05,
    seed: int = 0,
    transparency_every: int = 4,
    measure_crops: int = 16,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    balance_by: str = "params",
    fold: bool = True,
    style: str = "faccent",
) -> AccentuationResult:
    """Accentuate ``objective`` in the seed ``images``: maximize f(x) - lam * beta * R(x) from x = x0.

    Args:
        model: takes (N, 3, H, W) images in [0, 1].
        objective: f, one value per image (per-image units: one per seed), or a unit "layer:channel".
        images: the seed images x0, (N, 3, H, W) or (3, H, W) in [0, 1].
        reg_layer: layer of the latent regularization R ("input" for pixel space; default: a block
            before the objective's layer at about half its depth, `default_reg_layer`: ``_blocks.8``
            for a class of EfficientNet-Lite0).
        lam: the regularization weight, or a sequence of weights (one accentuation each, one batch).
        steps, lr: Adam steps and learning rate (faccent: 100, 0.05).
        crops, crop_side, noise: views per step, crop side range (fraction of the canvas), noise std.
        canvas: image side (default: the seeds' side); input_size: the crops' side (default: the
            model's input size).
        param: "phase" (faccent's seeded magnitude-gated phase), "fourier" or "pixel".
        mask: None, "attribution" (confine changes to where f is attributed, `attribution_mask`), or
            an (N, 1, H, W) tensor in [0, 1].
        seed: RNG seed of every random draw.
        transparency_every: accumulate |df/dx| for the mask every this many steps (0: use |dL/dx|).
        measure_crops: crops of the fixed draw on which R before/after is measured.
        balance_by: how beta is set at step 0: "params" (faccent's balance, equal gradient L1 norms
            w.r.t. the parameterization's parameters, so that lam means what it means in faccent) or
            "image" (equal norms w.r.t. the image's pixels: the same beta for every parameterization).
        style: "faccent": the optimization as faccent runs it, so that lam means faccent's lam (its
            step-0 image, 0.7 % below the seed's contrast, and logit clamp for the phase
            parameterization; its integer crops with noise at the crop's resolution, `boxes`);
            "phosphene": start exactly at the seed, continuous crops in one warp, per-pixel noise (at
            the same lam, closer to the seed and less gain; docs/accentuation.md).
        fold: fold BatchNorm layers that neither f nor R reads into their convolutions (`render`).
    Returns:
        an `AccentuationResult`.
    """
    started = time.perf_counter()
    device = torch.device(device) if device is not None else model_device(model)
    objective = as_objective(objective)
    reg_layer = reg_layer or default_reg_layer(model, objective.layers)
    lams = _lambdas(lam, steps, crops)
    seeds = _seed_batch(model, objective, images, reg_layer, canvas).to(device)
    n, group, canvas = seeds.shape[0], len(lams), seeds.shape[-1]
    if balance_by not in BALANCES:
        raise PhospheneError(f"unknown balance {balance_by!r}; use one of {', '.join(BALANCES)}")
    if style not in STYLES:
        raise PhospheneError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
    options = {"style": "exact"} if param == "phase" and style == "phosphene" else {}
    input_size = _crop_side(model, input_size, canvas)
    with frozen(model), fold_batchnorm(model, set(objective.layers) | {reg_layer}, canvas, device, fold):
        confine = _confine_mask(model, objective, seeds, mask)
        image = ConfinedImage(seeded_param(param, seeds.repeat_interleave(group, 0), **options), seeds,
                              confine, repeat=group).to(device)
        shared = SharedCrops(crop_side, input_size, noise, group,
                             style="faccent" if style == "faccent" else "warp")
        distance = LatentDistance(model, reg_layer, seeds, shared)
        try:
            gen = torch.Generator(device=device).manual_seed(seed + 1)
            beta = balance(model, objective, distance, shared, crops, gen, balance_by, param,
                           confine, style)
            weights = (beta[:, None] * torch.tensor(lams, device=device)[None, :]).reshape(-1)
            state = _Accentuation(objective, distance, weights, image, transparency_every)
            labels = [f"{objective.label(i)} lam={lams[i % group]:g}" for i in range(n * group)]
            total = Objective(state, set(objective.layers) | {reg_layer},
                              f"{objective.name} - lam*beta*R({reg_layer})", labels=labels)
            config = RenderConfig(steps=steps, lr=lr, size=canvas, batch=n * group, seed=seed, copies=crops,
                                  fold=False)  # folded above, for the balance step too
            rendered = Renderer(model, total, image, shared, config, device=device).run(progress)
        finally:
            distance.close()
    f_after, r_after = measure(model, objective, reg_layer, rendered.images, seeds, measure_crops,
                               input_size, crop_side)
    f_seed, _ = measure(model, objective, reg_layer, seeds, seeds, 0, input_size)
    saliency = rendered.transparency if state.saliency is None else state.saliency
    settings = {**config.record(), "objective": objective.name, "reg_layer": reg_layer, "lams": lams,
                "crop_side": list(crop_side), "noise": noise, "canvas": canvas, "input_size": input_size,
                "param": param, "mask": mask if isinstance(mask, str) or mask is None else "tensor",
                "transparency_every": transparency_every, "measure_crops": measure_crops,
                "crops": crops, "balance": balance_by, "style": style, "fold": fold,
                "model": getattr(model, "name", type(model).__name__)}
    return AccentuationResult(
        images=rendered.images, seeds=seeds.cpu(), lams=lams,
        labels=[objective.label(i) for i in range(n * group)], f_before=f_seed.repeat_interleave(group),
        f_after=f_after, r_before=torch.zeros(n * group), r_after=r_after, beta=beta.detach().cpu(),
        mask=transparency_mask(saliency.cpu()), attribution=None if confine is None else confine.cpu(),
        f_history=torch.stack(state.f_history).cpu(), r_history=torch.stack(state.r_history).cpu(),
        settings=settings, seconds=time.perf_counter() - started)


def _crop_side(model: nn.Module, input_size: int | None, canvas: int) -> int:
    """The side the crops are resized to: ``input_size``, else the model's; a fixed-input model's
    own side (a different ``input_size`` is an error)."""
    fixed = fixed_input_size(model)
    if fixed is not None and input_size not in (None, fixed):
        raise PhospheneError(f"this model only takes {fixed}-pixel images; input_size {input_size} "
                             "cannot be used")
    return fixed or input_size or getattr(model, "input_size", canvas)


def _confine_mask(model: nn.Module, objective: Objective, seeds: torch.Tensor,
                  mask: str | torch.Tensor | None) -> torch.Tensor | None:
    if mask is None or (isinstance(mask, str) and mask == "none"):
        return None
    if isinstance(mask, str):
        if mask != "attribution":
            raise PhospheneError(f"unknown mask {mask!r}; use 'attribution', 'none' or a tensor")
        return attribution_mask(model, objective, seeds)
    mask = torch.as_tensor(mask, dtype=torch.float32, device=seeds.device)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if mask.shape[0] not in (1, seeds.shape[0]) or mask.shape[-2:] != seeds.shape[-2:]:
        raise PhospheneError(f"mask of shape {tuple(mask.shape)} does not fit seeds {tuple(seeds.shape)}")
    return mask.expand(seeds.shape[0], 1, *seeds.shape[-2:]).clamp(0, 1)
