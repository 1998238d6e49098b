"""The optimization loop: ``render(model, objective)`` makes images that maximize an objective.

One step: the parameterization makes the images, each is repeated ``copies`` times and randomly
transformed in one warp, the model runs only as deep as the objective reads (`LayerTap`), the
objective gives one value per image, and Adam ascends their sum. The loop does no host-device
synchronisation: the objective history stays on the device until the end.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .compiling import compiled
from .folding import fold_batchnorm
from .hooks import LayerTap
from .images import atomic_write_bytes, image_grid, save_image
from .objectives import Acts, Objective, evaluate
from .param import make_param
from .transforms import Compose, make_transforms


@dataclass
class RenderResult:
    """What `render` returns. Tensors are on the CPU; N is the number of images rendered."""

    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    history: torch.Tensor  # (steps, N) objective per step, on the transformed views
    final: torch.Tensor  # (N,) objective on the un-transformed final images
    transparency: torch.Tensor  # (N, 1, H, W) in [0, 1]: accumulated |dL/dx|, max-normalized
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def save(self, out_dir: str | Path, prefix: str = "unit", grid_name: str = "grid.png",
             columns: int | None = None) -> dict[str, Any]:
        """Write one PNG per image, a labelled grid PNG and ``render.json``; returns the JSON."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, image in enumerate(self.images):
            name = f"{prefix}_{i:03d}_{_slug(self.labels[i])}.png"
            save_image(image, out / name)
            files.append(name)
        captions = [f"{lab} {val:.2f}" for lab, val in zip(self.labels, self.final.tolist())]
        save_image(image_grid(self.images, captions, columns=columns), out / grid_name)
        record = {
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "units": [
                {"label": lab, "file": f, "final_objective": float(v),
                 "last_step_objective": float(h)}
                for lab, f, v, h in zip(self.labels, files, self.final, self.history[-1])
            ],
            "grid": grid_name,
        }
        atomic_write_bytes(out / "render.json", json.dumps(record, indent=2).encode())
        return record


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:40]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients for the duration; restores the caller's settings."""
    training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for p, flag in flags:
            p.requires_grad_(flag)


def progress_enabled(progress: bool | None) -> bool:
    """Show a bar when asked, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress


def render(
    model: nn.Module,
    objective: Objective,
    param: str | nn.Module = "fourier",
    transforms: str | Compose | None = "standard",
    steps: int = 256,
    lr: float = 0.05,
    size: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    copies: int = 1,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    amp: bool = False,
    truncate: bool = True,
    channels_last: bool = False,
    param_options: dict[str, Any] | None = None,
    fold: bool = True,
    compile: bool = False,
) -> RenderResult:
    """Optimize images to maximize ``objective`` on ``model``; one image per batch element.

    Args:
        model: takes (N, 3, H, W) images in [0, 1] (see `load_model`).
        objective: an `Objective`; its unit lists set the batch size unless ``batch`` is given.
        param: "fourier", "pixel", "maco", or a module whose ``forward()`` returns the images.
        transforms: "standard" (lucid's), "crops" (faccent's), "none", or a `Compose`.
        steps, lr: Adam steps and learning rate.
        size: image side in pixels (default: the model's input size).
        copies: transformed views of each image per step (averaged in the objective).
        seed: seeds the initial image and every random draw; CPU renders are deterministic.
        amp: run the model under bfloat16 autocast (useful on GPUs).
        truncate: stop the forward pass after the deepest layer the objective reads.
        fold: fold eval BatchNorm into the preceding convolutions where no objective reads them
            (`fold_batchnorm`; same activations within float tolerance, the model is restored).
        compile: run the truncated forward under ``torch.compile`` (eager with a warning if it fails).
    Returns:
        a `RenderResult` with images, objective history, final objective on the clean images,
        and a transparency map.
    """
    started = time.perf_counter()
    device = torch.device(device) if device is not None else model_device(model)
    size = size or getattr(model, "input_size", 224)
    batch = batch or objective.batch_size or 1
    cpu_gen = torch.Generator().manual_seed(seed)
    if isinstance(param, str):
        param_name = param
        image_param = make_param(param, batch, size, generator=cpu_gen, **(param_options or {}))
    else:
        param_name, image_param = type(param).__name__, param
    image_param = image_param.to(device)
    transform = make_transforms(transforms, size)
    gen = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(image_param.parameters(), lr=lr)
    history = torch.zeros(steps, batch, device=device)
    saliency = torch.zeros(batch, 1, size, size, device=device)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp
                else contextlib.nullcontext())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)

    def accumulate(grad: torch.Tensor) -> None:
        saliency.add_(grad.detach().abs().sum(1, keepdim=True))

    with (frozen(model), fold_batchnorm(model, objective.layers, size, device, fold),
          LayerTap(model, objective.layers, truncate=truncate) as tap):
        if compile:
            tap.forward = compiled(model)
        for step in tqdm(range(steps), disable=not progress_enabled(progress), desc="render",
                         unit="step", leave=False):
            optimizer.zero_grad(set_to_none=True)
            images = image_param()
            if images.requires_grad:
                images.register_hook(accumulate)
            views = transform(images, gen, copies=copies).contiguous(memory_format=memory_format)
            with autocast:
                acts = Acts(tap(views), copies)
                values = evaluate(objective, acts, copies).float()
            (-values.sum()).backward()
            optimizer.step()
            history[step] = values.detach()
        with torch.no_grad():
            images = image_param().float()
            with autocast:
                final = evaluate(objective, Acts(tap(images.contiguous(memory_format=memory_format))))
    peak = saliency.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
    labels = [objective.label(i) for i in range(batch)]
    settings = {
        "objective": objective.name, "param": param_name, "steps": steps, "lr": lr, "size": size,
        "batch": batch, "copies": copies, "seed": seed, "amp": amp, "truncate": truncate,
        "transforms": transforms if isinstance(transforms, str) or transforms is None
        else repr(transforms.transforms),
        "model": getattr(model, "name", type(model).__name__), "stop_layer": tap.stop_layer,
        "fold": fold, "compile": compile,
    }
    return RenderResult(images.detach().cpu(), history.cpu(), final.float().cpu(),
                        (saliency / peak).cpu(), labels, settings, time.perf_counter() - started)
