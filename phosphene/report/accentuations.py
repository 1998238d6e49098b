"""Stage 4: accentuations of each unit in its top exemplars and in unrelated images.

Seeds per unit: the ``accent_top`` best images by channel mean, and the ``accent_unrelated`` probe
images whose f is nearest the median (chosen by the inhibition stage, never one of the unit's
exemplars). The seeds of several units are one batched `accentuate` call (one unit per seed, at
most ``accent_batch`` seeds), with the latent regularization at the unit's attribution layer, λ = 1.
Each seed draws its crops and noise from its own random stream (unit, seed number), so a unit's
pictures are the same whichever units share its call (`accentuate`'s ``streams``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._api import AccentuationResult, accentuate, mining, obj, progress_bar, to_uint8
from .config import ReportSettings
from .exemplars import images_of
from .layout import LayerFiles, write_picture

STAGE = "accentuation"
STREAMS_PER_UNIT = 1024  # seed j of unit u draws from random stream u * STREAMS_PER_UNIT + j


def streams_of(owners: list[int]) -> list[int]:
    """The random stream of each seed, ``owners`` listing each seed's unit (a unit's seeds adjacent)."""
    streams, seen = [], {}
    for unit in owners:
        streams.append(unit * STREAMS_PER_UNIT + seen.get(unit, 0))
        seen[unit] = seen.get(unit, 0) + 1
    return streams


def _seeds(run: mining.MiningRun, layer: str, unit: int, settings: ReportSettings,
           files: LayerFiles) -> list[dict]:
    """[{kind, index, path}] of the unit's seeds."""
    paths = run.image_paths()
    top = [{"kind": "top exemplar", "index": e.index, "path": e.path}
           for e in run.top(layer, unit, min(settings.accent_top, run.k), by="mean")]
    calm = files.read(unit, "inhibition")["unrelated"]
    return top + [{"kind": "unrelated", "index": r["index"], "path": paths[r["index"]]} for r in calm]


def load_seed(path, run: mining.MiningRun, size: int) -> torch.Tensor:
    """A seed image (3, size, size) in [0, 1], preprocessed as in the run, then resized to ``size``."""
    image = torch.from_numpy(np.ascontiguousarray(images_of(run).chw(path))).float()[None] / 255
    if image.shape[-1] != size:
        image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return image[0].clamp(0, 1)


def accentuate_units(model: nn.Module, layer: str, owners: list[int], images: torch.Tensor, reg: str,
                     settings: ReportSettings, lam: float = 1.0, progress: bool = False
                     ) -> AccentuationResult:
    """Accentuate unit ``owners[i]`` of ``layer`` in seed ``images[i]`` (N, 3, S, S), regularized at
    ``reg``, with the report's settings (the call behind a unit page's accentuations)."""
    return accentuate(model, obj.channel(layer, owners), images, reg_layer=reg, lam=lam,
                      steps=settings.accent_steps, crops=settings.accent_crops, canvas=settings.size,
                      input_size=settings.size, seed=settings.seed, progress=progress,
                      streams=streams_of(owners))


def accentuations(model: nn.Module, run: mining.MiningRun, layer: str, units: list[int],
                  settings: ReportSettings, files: LayerFiles, progress: bool | None) -> None:
    """Accentuate every unit not done yet, the seeds of several units per call (at most
    ``settings.accent_batch`` seeds, at least one unit)."""
    todo = files.pending(units, STAGE)
    per_unit = settings.accent_top + settings.accent_unrelated
    if per_unit == 0:
        for unit in todo:
            files.write(unit, STAGE, {"rows": []})
        return
    step = max(1, settings.accent_batch // per_unit)
    bar = progress_bar(total=len(todo), desc=f"{layer} accentuate", unit="unit", progress=progress)
    for start in range(0, len(todo), step):
        chunk = todo[start:start + step]
        seeds = {u: _seeds(run, layer, u, settings, files) for u in chunk}
        owners = [u for u in chunk for _ in seeds[u]]
        images = torch.stack([load_seed(s["path"], run, settings.size) for u in chunk for s in seeds[u]])
        reg = files.read(chunk[0], "inhibition")["attr_layer"]
        result = accentuate_units(model, layer, owners, images, reg, settings)
        row = 0
        for unit in chunk:
            records = []
            for j, seed in enumerate(seeds[unit]):
                folder = files.unit_dir(unit)
                alpha = result.mask[row]
                shown = result.images[row] * alpha + 0.1 * (1 - alpha)
                write_picture(to_uint8(result.seeds[row]), folder / f"seed_{j}.jpg")
                write_picture(to_uint8(result.images[row]), folder / f"accent_{j}.jpg")
                write_picture(to_uint8(shown), folder / f"accent_{j}_mask.jpg")
                records.append({"kind": seed["kind"], "index": seed["index"], "path": seed["path"].name,
                                "seed": f"seed_{j}.jpg", "accent": f"accent_{j}.jpg",
                                "mask": f"accent_{j}_mask.jpg", "f_before": float(result.f_before[row]),
                                "f_after": float(result.f_after[row]), "r_after": float(result.r_after[row])})
                row += 1
            files.write(unit, STAGE, {"reg_layer": reg, "lam": 1.0, "rows": records})
        bar.update(len(chunk))
    bar.close()
