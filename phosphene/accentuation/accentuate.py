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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..errors import PhospheneError
from ..io.display import Rich, Section, Tile, View, line_plot, tiles
from ..io.images import atomic_write_bytes, image_grid, save_image
from ..layers.folding import fold_batchnorm
from ..layers.model_state import frozen
from ..layers.names import check_layers
from ..models.input_shape import to_channels
from ..models.wrapper import ImageModel, as_image_model
from ..objectives import Acts, Objective
from ..param import ConfinedImage, seeded_param
from ..render import RenderConfig, Renderer, as_objective
from ..settings import with_overrides
from .balance import balance
from .config import AccentuationConfig
from .crops import LatentDistance, SharedCrops, measure, resize
from .masks import attribution_mask, heat_picture, transparency_mask
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
EXTRA_NOTE = ("; with the paper's columns: attribution heat map of f in the seed (gradient x input, "
              "p99 = 1) after the seed, the feature's visualization from noise last")
@dataclass
class AccentuationResult(Rich):
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
    heatmap: torch.Tensor | None = None  # (N, 1, H, W) attribution of f in the seed (`add_figure_columns`)
    visualization: torch.Tensor | None = None  # (M, 3, H, W) f rendered from noise (`add_figure_columns`)

    @property
    def gain(self) -> torch.Tensor:
        """(M,) f_after - f_before."""
        return self.f_after - self.f_before

    def seed_of(self, row: int) -> torch.Tensor:
        """The seed (3, H, W) of accentuation ``row``."""
        return self.seeds[row // len(self.lams)]

    @property
    def columns(self) -> int:
        """Pictures per row of `figure`: 4, plus the heat map and the visualization when present."""
        return 4 + (self.heatmap is not None) + (self.visualization is not None)

    def panels(self) -> tuple[list[torch.Tensor], list[str]]:
        """`columns` pictures per accentuation row and their captions: seed | (attribution heat map) |
        accentuation | accentuation through its transparency | amplified difference | (visualization)
        (see `figure`)."""
        panels, captions = [], []
        group = len(self.lams)
        for row in range(self.images.shape[0]):
            seed, image, alpha = self.seed_of(row), self.images[row], self.mask[row]
            overlay = image * alpha + 0.1 * (1 - alpha)
            delta = image - seed
            q = float(torch.quantile(delta.abs().flatten(), 0.99).clamp_min(1e-4))
            lam = self.lams[row % group]
            panels += [seed]
            captions += [f"seed f={self.f_before[row]:.2f}"]
            if self.heatmap is not None:
                panels.append(heat_picture(seed, self.heatmap[row // group]))
                captions.append(f"attr. {self.labels[row]}")
            panels += [image, overlay, (0.5 + 0.5 / q * delta).clamp(0, 1)]
            captions += [f"lam={lam:g} f={self.f_after[row]:.2f}",
                         f"by |df/dx| R={self.r_after[row]:.2f}",
                         f"diff x{0.5 / q:.0f} p99 {255 * q:.0f}/255"]
            if self.visualization is not None:
                panels.append(self.visualization[row])
                captions.append(f"vis. {self.labels[row]}")
        return panels, captions

    def figure(self) -> Image.Image:
        """One row per accentuation: seed | accentuation | accentuation through its transparency |
        amplified difference (and, after `add_figure_columns`, the seed's attribution heat map after
        the seed and the feature's visualization last: the accentuation paper's Fig. 2).

        The transparency panel is the accentuation over dark, weighted by the transparency ``mask``
        (accumulated |df/dx|), not a binary mask. The difference is shown as 0.5 + 0.5 * (x - x0) / q,
        q the 99th percentile of |x - x0| of the row; its caption gives the gain 0.5 / q and q in 8-bit
        levels, so a change too small to see in the accentuation itself shows as a small q."""
        panels, captions = self.panels()
        note = FIGURE_NOTE + (EXTRA_NOTE if self.columns > 4 else "")
        return image_grid(panels, captions, columns=self.columns, note=note)

    def _view(self, rows: int = 16) -> View:
        panels, captions = self.panels()
        shown = min(rows, self.images.shape[0])
        group = len(self.lams)
        k = self.columns
        sections = [Section(f"{self.labels[r]}, seed {r // group}, λ={self.lams[r % group]:g}",
                            tiles(panels[k * r:k * r + k], captions[k * r:k * r + k])) for r in range(shown)]
        names = [f"row {r}" for r in range(self.images.shape[0])]
        sections.append(Section("per step, on the crops", [
            Tile(line_plot(self.f_history, "f (objective)", labels=names), plot=True),
            Tile(line_plot(self.r_history, "R (distance to the seed)", labels=names), plot=True)]))
        numbers = {"accentuations": self.images.shape[0], "reg layer": self.settings.get("reg_layer", "?"),
                   "lambda": ", ".join(f"{v:g}" for v in self.lams), "steps": len(self.f_history),
                   "mean gain in f": float(self.gain.mean()), "mean R": float(self.r_after.mean()),
                   "seconds": round(self.seconds, 1)}
        more = f"; the first {shown} of {self.images.shape[0]} rows are shown" if shown < len(names) else ""
        return View(f"accentuation: {self.settings.get('objective', '')} on {self.settings.get('model', '')}",
                    numbers, sections, note=FIGURE_NOTE + more)

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


def _seed_batch(model: ImageModel, objective: Objective, images: torch.Tensor, reg_layer: str,
                canvas: int | None) -> torch.Tensor:
    """The seed images as an (N, 3, S, S) batch, after checking the layers and the unit count."""
    check_layers(model, set(objective.layers) | {reg_layer})
    seeds = _as_seeds(images, canvas, model.channels)
    n = seeds.shape[0]
    if objective.batch_size not in (None, 1, n):
        raise PhospheneError(f"the objective has {objective.batch_size} units for {n} seed images")
    return seeds


def accentuate(model: nn.Module, objective: Objective | str, images: torch.Tensor,
               config: AccentuationConfig | str | None = None, *, device: str | torch.device | None = None,
               progress: bool | None = None, streams: Sequence[int] | None = None,
               **overrides: Any) -> AccentuationResult:
    """Accentuate ``objective`` in the seed ``images``: maximize f(x) - lam * beta * R(x) from x = x0.

    Args:
        model: takes (N, 3, H, W) images in [0, 1].
        objective: f, one value per image (per-image units: one per seed), or a unit "layer:channel".
        images: the seed images x0, (N, 3, H, W) or (3, H, W) in [0, 1].
        config: the settings, an `AccentuationConfig` (reg_layer, lam, steps, crops, crop_side, noise,
            canvas, input_size, param, mask, lr, seed, transparency_every, measure_crops, balance_by,
            fold, style, precision, compile: documented there), or a string: the ``reg_layer``.
        device: where to run (default: the model's device).
        streams: one integer per seed image: each seed's random draws (crops and noise in the loop,
            the balance and the measurement) come from its own generator, seeded by ``seed`` and
            its stream, so that a seed's accentuation does not depend on which seeds share its batch
            (a report accentuates many units' seeds per call, `phosphene.report`). Default: one
            generator for the batch.
        **overrides: `AccentuationConfig` fields, e.g. ``reg_layer="_blocks.8", lam=[0, 1], steps=64``
            (an unknown one is a `PhospheneError` naming the close matches).
    Returns:
        an `AccentuationResult`.
    """
    started = time.perf_counter()
    if isinstance(config, str):
        config, overrides = None, {"reg_layer": config, **overrides}
    config = with_overrides(AccentuationConfig, config, overrides, "accentuate")
    model = as_image_model(model)
    device = torch.device(device) if device is not None else model.device
    objective = as_objective(objective)
    reg_layer = config.reg_layer or default_reg_layer(model, objective.layers)
    lams = config.lams
    seeds = _seed_batch(model, objective, images, reg_layer, config.canvas).to(device)
    n, group, canvas = seeds.shape[0], len(lams), seeds.shape[-1]
    if streams is not None and len(streams) != n:
        raise PhospheneError(f"{len(streams)} random streams for {n} seed images (give one per seed)")
    input_size = _crop_side(model, config.input_size)
    with frozen(model), fold_batchnorm(model, set(objective.layers) | {reg_layer}, canvas, device,
                                       config.fold):
        rendered, state, beta, confine, loop = _optimize(model, objective, seeds, reg_layer, config,
                                                         input_size, progress, streams)
    f_after, r_after = measure(model, objective, reg_layer, rendered.images, seeds, config.measure_crops,
                               input_size, config.crop_side, streams=streams)
    f_seed, _ = measure(model, objective, reg_layer, seeds, seeds, 0, input_size)
    saliency = rendered.transparency if state.saliency is None else state.saliency
    settings = {**loop.record(), "objective": objective.name, "reg_layer": reg_layer, "lams": lams,
                "crop_side": list(config.crop_side), "noise": config.noise, "canvas": canvas,
                "input_size": input_size, "param": config.param, "mask": config.mask_name(),
                "transparency_every": config.transparency_every, "measure_crops": config.measure_crops,
                "crops": config.crops, "balance": config.balance_by, "style": config.style,
                "fold": config.fold, "model": model.name}
    return AccentuationResult(
        images=rendered.images, seeds=seeds.cpu(), lams=lams,
        labels=[objective.label(i // group) for i in range(n * group)],  # one label per seed, x lams
        f_before=f_seed.repeat_interleave(group),
        f_after=f_after, r_before=torch.zeros(n * group), r_after=r_after, beta=beta.detach().cpu(),
        mask=transparency_mask(saliency.cpu()), attribution=None if confine is None else confine.cpu(),
        f_history=torch.stack(state.f_history).cpu(), r_history=torch.stack(state.r_history).cpu(),
        settings=settings, seconds=time.perf_counter() - started)


def _optimize(model: ImageModel, objective: Objective, seeds: torch.Tensor, reg_layer: str,
              config: AccentuationConfig, input_size: int, progress: bool | None,
              streams: Sequence[int] | None = None):
    """The balance step and the render loop on the frozen (and folded) model.

    Returns (the `RenderResult`, the `_Accentuation` state, beta (N,), the confining mask or None,
    the loop's `RenderConfig`)."""
    lams, device = config.lams, seeds.device
    n, group, canvas = seeds.shape[0], len(lams), seeds.shape[-1]
    options = {"style": "exact"} if config.param == "phase" and config.style == "phosphene" else {}
    confine = _confine_mask(model, objective, seeds, config.mask)
    image = ConfinedImage(seeded_param(config.param, seeds.repeat_interleave(group, 0), **options), seeds,
                          confine, repeat=group).to(device)
    shared = SharedCrops(config.crop_side, input_size, config.noise, group,
                         style="faccent" if config.style == "faccent" else "warp", streams=streams)
    distance = LatentDistance(model, reg_layer, seeds, shared)
    try:
        gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        beta = balance(model, objective, distance, shared, config.crops, gen, config.balance_by,
                       config.param, confine, config.style)
        weights = (beta[:, None] * torch.tensor(lams, device=device)[None, :]).reshape(-1)
        state = _Accentuation(objective, distance, weights, image, config.transparency_every)
        labels = [f"{objective.label(i)} lam={lams[i % group]:g}" for i in range(n * group)]
        total = Objective(state, set(objective.layers) | {reg_layer},
                          f"{objective.name} - lam*beta*R({reg_layer})", labels=labels)
        loop = RenderConfig(steps=config.steps, lr=config.lr, size=canvas, batch=n * group, seed=config.seed,
                            copies=config.crops, fold=False,  # folded by the caller, for the balance too
                            precision=config.precision, compile=config.compile)
        rendered = Renderer(model, total, image, shared, loop, device=device).run(progress)
    finally:
        distance.close()
    return rendered, state, beta, confine, loop


def _crop_side(model: ImageModel, input_size: int | None) -> int:
    """The side the crops are resized to: ``input_size``, else the model's; a fixed-input model's
    own side (a different ``input_size`` is an error)."""
    fixed = model.fixed_side
    if fixed is not None and input_size not in (None, fixed):
        raise PhospheneError(f"this model only takes {fixed}-pixel images; input_size {input_size} "
                             "cannot be used")
    return fixed or input_size or model.input_size


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
