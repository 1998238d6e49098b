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
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .errors import PhospheneError
from .folding import fold_batchnorm
from .hooks import INPUT, LayerTap, check_layers
from .images import atomic_write_bytes, image_grid, save_image
from .masks import attribution_mask, transparency_mask
from .objectives import Acts, Objective, evaluate
from .param import _logit
from .render import frozen, model_device, render
from .seeded import ConfinedImage, seeded_param
from .transforms import Compose, RandomCrop

GATE_INIT = 5.0  # faccent's magnitude-gate start; beta is measured at the image this gate gives


# -- crops shared by the image and its seed ---------------------------------------------------
@dataclass
class CropDraw:
    """One draw of crops: (n*k, 3, 3) maps (output -> input pixels) and (n*k, 3, s, s) noise."""

    maps: torch.Tensor
    noise: torch.Tensor | None


class SharedCrops(Compose):
    """faccent's augmentation, with each draw reusable on the seeds.

    Square crops with side a uniform fraction in ``side`` of the canvas, uniform position, resized to
    ``size``; plus Gaussian noise (std ``noise``) and uniform noise (+-``noise``/2). The images are
    ``group`` adjacent copies of each seed (one per lambda); the copies of a seed share their crops.
    A call keeps its draw in ``pending``; `take` hands it (once) to whoever replays it on the seeds.
    """

    def __init__(self, side: tuple[float, float] = (0.05, 0.99), size: int = 224,
                 noise: float = 0.02, group: int = 1):
        super().__init__([RandomCrop(tuple(side), size)])
        self.size, self.noise_std, self.group = size, noise, group
        self.pending: CropDraw | None = None

    def draw(self, n: int, copies: int, canvas: int, gen: torch.Generator | None,
             device: torch.device | str) -> CropDraw:
        """Crops and noise for ``copies`` views of each of ``n`` seeds."""
        maps = self.sample(n * copies, canvas, gen, device)
        noise = None
        if self.noise_std:
            shape = (n * copies, 3, self.size, self.size)
            noise = torch.randn(shape, generator=gen, device=device) * self.noise_std
            noise += (torch.rand(shape, generator=gen, device=device) - 0.5) * self.noise_std
        return CropDraw(maps, noise)

    def apply_draw(self, images: torch.Tensor, draw: CropDraw, group: int = 1) -> torch.Tensor:
        """Views (n*group*k, 3, size, size) of ``images`` (n*group rows) under ``draw`` (n*k rows)."""
        n = images.shape[0] // group
        k = draw.maps.shape[0] // n
        maps = draw.maps.view(n, 1, k, 3, 3).expand(n, group, k, 3, 3).reshape(-1, 3, 3)
        views = self.apply(images.repeat_interleave(k, 0), maps.to(images.dtype))
        if draw.noise is not None:
            noise = draw.noise.view(n, 1, k, *draw.noise.shape[1:]).expand(n, group, k, -1, -1, -1)
            views = views + noise.reshape(views.shape).to(views.dtype)
        return views

    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None,
                 copies: int = 1) -> torch.Tensor:
        n = images.shape[0] // self.group
        self.pending = self.draw(n, copies, images.shape[-1], gen, images.device)
        return self.apply_draw(images, self.pending, self.group)

    def take(self) -> CropDraw | None:
        """The last draw, once (None when it was taken or there was none: un-transformed images)."""
        draw, self.pending = self.pending, None
        return draw


# -- the latent regularization ----------------------------------------------------------------
def channel_distance(acts: torch.Tensor, seed_acts: torch.Tensor, n: int, eps: float = 1e-3
                     ) -> torch.Tensor:
    """Per row of ``acts``: mean over positions of the channel L2 distance to the seed's row.

    acts: (n*g*k, C, ...) rows ordered (seed, copy, view); seed_acts: (n*k, C, ...). Returns (n*g*k,).
    The norm is smoothed, sqrt(d^2 + eps^2) - eps, so that its gradient is 0 (not a random direction
    from round-off) where x equals x0.
    """
    k = seed_acts.shape[0] // n
    g = acts.shape[0] // seed_acts.shape[0]
    a = acts.float().reshape(n, g, k, acts.shape[1], -1)
    a0 = seed_acts.float().reshape(n, 1, k, seed_acts.shape[1], -1)
    dist = ((a - a0).pow(2).sum(3) + eps * eps).sqrt() - eps
    return dist.mean(-1).reshape(-1)


class LatentDistance:
    """R for each view of the accentuations: `channel_distance` at ``layer`` to the seeds' views.

    Reads the images' activations from ``acts``, replays the crops' last draw on the seeds and runs
    them (no gradient) through its own truncated `LayerTap`, created and run once here so that its
    hook fires before any later tap's.
    """

    def __init__(self, model: nn.Module, layer: str, seeds: torch.Tensor, crops: SharedCrops):
        self.layer, self.seeds, self.crops = layer, seeds, crops
        self.tap = None if layer == INPUT else LayerTap(model, [layer])
        self.seed_acts(seeds[:1])

    def seed_acts(self, views: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return views if self.tap is None else self.tap(views)[self.layer]

    def __call__(self, acts: Acts) -> torch.Tensor:
        draw = self.crops.take()
        views = self.seeds if draw is None else self.crops.apply_draw(self.seeds, draw)
        return channel_distance(acts[self.layer], self.seed_acts(views), self.seeds.shape[0])

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


def balance(model: nn.Module, objective: Objective, distance: LatentDistance, crops: SharedCrops,
            copies: int, gen: torch.Generator) -> torch.Tensor:
    """beta per seed (N,): sum|df/dx| / sum|dR/dx| over one draw of crops (faccent's balance).

    R has a cusp at x = x0 (its gradient there is undefined), so both gradients are taken where
    faccent's optimization starts: sigmoid(sigmoid(5) * logit(x0)), the seed with its logits scaled
    by 0.993 (its magnitude gate at initialisation).
    """
    seeds = distance.seeds
    probe = torch.sigmoid(torch.sigmoid(torch.tensor(GATE_INIT)) * _logit(seeds)).requires_grad_(True)
    crops.pending = crops.draw(seeds.shape[0], copies, seeds.shape[-1], gen, seeds.device)
    views = crops.apply_draw(probe, crops.pending)
    with LayerTap(model, objective.layers | {distance.layer}) as tap:
        acts = Acts(tap(views), copies)
        f_rows, r_rows = objective(acts), distance(acts)
    (grad_f,) = torch.autograd.grad(f_rows.float().sum(), probe, retain_graph=True)
    (grad_r,) = torch.autograd.grad(r_rows.sum(), probe)
    return grad_f.abs().flatten(1).sum(1) / grad_r.abs().flatten(1).sum(1).clamp_min(1e-12)


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


# -- measuring ----------------------------------------------------------------------------------
def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of (N, 3, H, W) to (N, 3, size, size); a no-op at that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def measure(model: nn.Module, objective: Objective, reg_layer: str, images: torch.Tensor,
            seeds: torch.Tensor, crops: int = 16, input_size: int | None = None,
            side: tuple[float, float] = (0.05, 0.99), seed: int = 1234, chunk: int = 64
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """f and R of ``images`` (M = N*g rows, g copies per seed) against ``seeds`` (N), measured the
    same way for any method: f on the whole image resized to ``input_size``; R over one fixed,
    seeded draw of ``crops`` noise-free crops shared by image and seed. Returns (f (M,), R (M,))."""
    device = model_device(model)
    images, seeds = images.to(device).float(), seeds.to(device).float()
    size = input_size or getattr(model, "input_size", images.shape[-1])
    n, group = seeds.shape[0], images.shape[0] // seeds.shape[0]
    with frozen(model):
        with LayerTap(model, objective.layers) as tap:
            f = evaluate(objective, Acts(tap(resize(images, size))))
        if crops == 0:
            return f.float().cpu(), torch.zeros(images.shape[0])
        shared = SharedCrops(side, size, noise=0.0)
        draw = shared.draw(n, crops, seeds.shape[-1], torch.Generator().manual_seed(seed), "cpu")
        draw = CropDraw(draw.maps.to(device), None)
        with LayerTap(model, [] if reg_layer == INPUT else [reg_layer]) as reg_tap:
            def acts(views: torch.Tensor) -> torch.Tensor:
                if reg_layer == INPUT:
                    return views
                reg_tap(views[:1])  # learn where to stop before the big batches
                return torch.cat([reg_tap(part)[reg_layer] for part in views.split(chunk)])

            r = channel_distance(acts(shared.apply_draw(images, draw, group)),
                                 acts(shared.apply_draw(seeds, draw)), n)
    return f.float().cpu(), r.view(-1, crops).mean(1).cpu()


# -- results ------------------------------------------------------------------------------------
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
        """One row per accentuation: seed | accentuation | mask overlay | amplified difference.

        The difference is shown as 0.5 + 0.5 * (x - x0) / q, q the 99th percentile of |x - x0| of the
        row (the gain factor 0.5 / q is in the caption)."""
        panels, captions = [], []
        for row in range(self.images.shape[0]):
            seed, image, alpha = self.seed_of(row), self.images[row], self.mask[row]
            overlay = image * alpha + 0.1 * (1 - alpha)
            delta = image - seed
            scale = 0.5 / float(torch.quantile(delta.abs().flatten(), 0.99).clamp_min(1e-4))
            lam = self.lams[row % len(self.lams)]
            panels += [seed, image, overlay, (0.5 + scale * delta).clamp(0, 1)]
            captions += [f"seed f={self.f_before[row]:.2f}",
                         f"lam={lam:g} f={self.f_after[row]:.2f}",
                         f"mask R={self.r_after[row]:.2f}", f"diff x{scale:.0f}"]
        return image_grid(panels, captions, columns=4)

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
def _as_seeds(seed: torch.Tensor, canvas: int | None) -> torch.Tensor:
    seeds = seed.unsqueeze(0) if seed.dim() == 3 else seed
    if seeds.dim() != 4 or seeds.shape[1] != 3:
        raise PhospheneError(f"seed images must be (N, 3, H, W), got shape {tuple(seed.shape)}")
    if seeds.shape[-1] != seeds.shape[-2] and canvas is None:
        raise PhospheneError("seed images must be square (load them with load_image(path, size))")
    return resize(seeds.float().clamp(0, 1), canvas) if canvas else seeds.float().clamp(0, 1)


def accentuate(
    model: nn.Module,
    objective: Objective,
    seed: torch.Tensor,
    reg_layer: str,
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
    seed_rng: int = 0,
    transparency_every: int = 4,
    measure_crops: int = 16,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    fold: bool = True,
) -> AccentuationResult:
    """Accentuate ``objective`` in the seed images: maximize f(x) - lam * beta * R(x) from x = x0.

    Args:
        model: takes (N, 3, H, W) images in [0, 1].
        objective: f, one value per image (per-image units: one per seed).
        seed: (N, 3, H, W) or (3, H, W) images in [0, 1].
        reg_layer: layer of the latent regularization R ("input" for pixel space).
        lam: the regularization weight, or a sequence of weights (one accentuation each, one batch).
        steps, lr: Adam steps and learning rate (faccent: 100, 0.05).
        crops, crop_side, noise: views per step, crop side range (fraction of the canvas), noise std.
        canvas: image side (default: the seeds' side); input_size: the crops' side (default: the
            model's input size).
        param: "phase" (faccent's seeded magnitude-gated phase), "fourier" or "pixel".
        mask: None, "attribution" (confine changes to where f is attributed, `attribution_mask`), or
            an (N, 1, H, W) tensor in [0, 1].
        seed_rng: seeds every random draw.
        transparency_every: accumulate |df/dx| for the mask every this many steps (0: use |dL/dx|).
        measure_crops: crops of the fixed draw on which R before/after is measured.
        fold: fold BatchNorm layers that neither f nor R reads into their convolutions (`render`).
    Returns:
        an `AccentuationResult`.
    """
    started = time.perf_counter()
    device = torch.device(device) if device is not None else model_device(model)
    lams = [float(lam)] if isinstance(lam, (int, float)) else [float(v) for v in lam]
    if not lams or any(v < 0 or not math.isfinite(v) for v in lams):
        raise PhospheneError(f"lambdas must be finite and >= 0, got {lams}")
    if steps < 1 or crops < 1:
        raise PhospheneError("steps and crops must be at least 1")
    check_layers(model, set(objective.layers) | {reg_layer})
    seeds = _as_seeds(seed, canvas).to(device)
    n, group = seeds.shape[0], len(lams)
    if objective.batch_size not in (None, 1, n):
        raise PhospheneError(f"the objective has {objective.batch_size} units for {n} seed images")
    canvas = seeds.shape[-1]
    input_size = input_size or getattr(model, "input_size", canvas)
    with frozen(model), fold_batchnorm(model, set(objective.layers) | {reg_layer}, canvas, device, fold):
        confine = _confine_mask(model, objective, seeds, mask)
        image = ConfinedImage(seeded_param(param, seeds.repeat_interleave(group, 0)), seeds, confine,
                              repeat=group).to(device)
        shared = SharedCrops(crop_side, input_size, noise, group)
        distance = LatentDistance(model, reg_layer, seeds, shared)
        try:
            gen = torch.Generator(device=device).manual_seed(seed_rng + 1)
            beta = balance(model, objective, distance, shared, crops, gen)
            weights = (beta[:, None] * torch.tensor(lams, device=device)[None, :]).reshape(-1)
            state = _Accentuation(objective, distance, weights, image, transparency_every)
            labels = [f"{objective.label(i)} lam={lams[i % group]:g}" for i in range(n * group)]
            total = Objective(state, set(objective.layers) | {reg_layer},
                              f"{objective.name} - lam*beta*R({reg_layer})", labels=labels)
            rendered = render(model, total, param=image, transforms=shared, steps=steps, lr=lr,
                              size=canvas, batch=n * group, seed=seed_rng, copies=crops,
                              device=device, progress=progress, fold=False)  # folded above
        finally:
            distance.close()
    images = rendered.images
    f_after, r_after = measure(model, objective, reg_layer, images, seeds, measure_crops, input_size,
                               crop_side)
    f_seed, _ = measure(model, objective, reg_layer, seeds, seeds, 0, input_size)
    saliency = state.saliency if state.saliency is not None else rendered.transparency
    settings = {
        "objective": objective.name, "reg_layer": reg_layer, "lams": lams, "steps": steps,
        "crops": crops, "crop_side": list(crop_side), "noise": noise, "canvas": canvas,
        "input_size": input_size, "param": param, "lr": lr, "seed_rng": seed_rng,
        "mask": mask if isinstance(mask, str) or mask is None else "tensor",
        "transparency_every": transparency_every, "measure_crops": measure_crops, "fold": fold,
        "model": getattr(model, "name", type(model).__name__),
    }
    return AccentuationResult(
        images=images, seeds=seeds.cpu(), lams=lams, labels=[objective.label(i) for i in range(n * group)],
        f_before=f_seed.repeat_interleave(group), f_after=f_after,
        r_before=torch.zeros(n * group), r_after=r_after, beta=beta.detach().cpu(),
        mask=transparency_mask(saliency.cpu()), attribution=None if confine is None else confine.cpu(),
        f_history=torch.stack(state.f_history).cpu(), r_history=torch.stack(state.r_history).cpu(),
        settings=settings, seconds=time.perf_counter() - started)


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
