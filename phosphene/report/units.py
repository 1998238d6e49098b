"""Stage 1: the unit visualizations, all units of a layer in batches through the one `render` loop.

A batch holds ``batch`` units x ``diverse`` images; each unit's images are pushed apart by a
diversity term computed *within* the unit's group (`objectives.diversity(layer, group=...)`), so
units never compete.
The value reported per image is the unit's channel mean on the clean image, without the diversity
term; the unit's main visualization is its image with the largest value.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from ._api import LayerTap, obj, progress_bar, render, to_uint8, transparency_mask
from .config import ReportSettings
from .layout import LayerFiles, write_picture

STAGE = "visualize"
THUMB = 112


def unit_values(model: nn.Module, layer: str, units: list[int], images: torch.Tensor) -> torch.Tensor:
    """Channel mean of ``units[b]`` on each clean image (B,), one forward pass."""
    objective = obj.channel(layer, units)
    device = next(iter(model.parameters())).device
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        return objective(obj.Acts(tap(images.to(device)))).float().cpu()


def visualize(model: nn.Module, layer: str, units: list[int], settings: ReportSettings,
              files: LayerFiles, progress: bool | None) -> None:
    """Render and save the visualizations of every unit of ``units`` not done yet."""
    todo = files.pending(units, STAGE)
    chunks = [todo[i:i + settings.batch] for i in range(0, len(todo), settings.batch)]
    bar = progress_bar(total=len(todo), desc=f"{layer} visualize", unit="unit", progress=progress)
    for chunk in chunks:
        per_unit = [u for u in chunk for _ in range(settings.diverse)]
        objective = obj.channel(layer, per_unit)
        if settings.diverse > 1 and settings.diversity:
            objective = objective + settings.diversity * obj.diversity(layer, group=settings.diverse)
        result = render(model, objective, param=settings.param, transforms="standard",
                        steps=settings.steps, size=settings.size, batch=len(per_unit),
                        seed=settings.seed + chunk[0], progress=False)
        values = unit_values(model, layer, per_unit, result.images)
        alpha = transparency_mask(result.transparency)
        for i, unit in enumerate(chunk):
            rows = slice(i * settings.diverse, (i + 1) * settings.diverse)
            save_unit(files, unit, result.images[rows], alpha[rows], values[rows])
        bar.update(len(chunk))
    bar.close()


def save_unit(files: LayerFiles, unit: int, images: torch.Tensor, alpha: torch.Tensor,
              values: torch.Tensor) -> None:
    """vis_i.png, vis_i_alpha.png (transparency as alpha), thumb.jpg and the stage record."""
    folder = files.unit_dir(unit)
    names = []
    for j, (image, mask) in enumerate(zip(images, alpha)):
        rgb = to_uint8(image)
        a = (mask[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        write_picture(rgb, folder / f"vis_{j}.png")
        write_picture(np.dstack([rgb, a]), folder / f"vis_{j}_alpha.png")
        names.append(f"vis_{j}")
    main = int(values.argmax())
    thumb = Image.fromarray(to_uint8(images[main])).resize((THUMB, THUMB), Image.Resampling.LANCZOS)
    write_picture(thumb, folder / "thumb.jpg")
    files.write(unit, STAGE, {"images": [f"{n}.png" for n in names],
                              "alpha": [f"{n}_alpha.png" for n in names],
                              "values": [float(v) for v in values], "main": main,
                              "best_value": float(values[main])})
