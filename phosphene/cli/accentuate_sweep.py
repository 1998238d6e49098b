"""``phosphene accentuate --reg-layer input,_blocks.4,_blocks.8``: the accentuation paper's reg-layer
sweep (its Fig. 3, bottom) in one call: one accentuation per regularization layer, each saved in
``OUT/reg_<layer>/`` as a single run is, and ``OUT/sweep.png``: one row per accentuation (seed, lambda),
the seed and then the accentuation under each reg layer, captioned with f after."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import torch

from ..accentuation import AccentuationConfig, accentuate
from ..io.images import image_grid, save_image


def split_reg_layers(text: str | None) -> list[str] | None:
    """``"input,_blocks.4"`` -> ["input", "_blocks.4"]; a single layer or None -> None (no sweep)."""
    if text is None or "," not in text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def reg_layer_sweep(model, objective, seeds: torch.Tensor, names: list[str], config: AccentuationConfig,
                    reg_layers: list[str], out: str, progress: bool | None) -> None:
    """Accentuate ``seeds`` once per layer of ``reg_layers``; write the runs and sweep.png."""
    results = []
    for reg_layer in reg_layers:
        result = accentuate(model, objective, seeds, replace(config, reg_layer=reg_layer), progress=progress)
        folder = Path(out) / ("reg_" + "".join(c if c.isalnum() or c in "-_" else "-" for c in reg_layer))
        result.save(folder, names=names)
        results.append(result)
        click.echo(f"reg layer {reg_layer:<16} f {result.f_before.mean():.4g} -> {result.f_after.mean():.4g} "
                   f"(mean)  R {result.r_after.mean():.4g}  {result.seconds:.1f}s -> {folder}")
    rows = results[0].images.shape[0]
    pictures, captions = [], []
    for row in range(rows):
        pictures.append(results[0].seed_of(row))
        lams = config.lams
        captions.append(f"{names[row // len(lams)][:7]} lam{lams[row % len(lams)]:g}")
        for reg_layer, result in zip(reg_layers, results):
            pictures.append(result.images[row])
            captions.append(f"{reg_layer[-8:]} {result.f_after[row]:.3g}")
    grid = image_grid(torch.stack(pictures), captions, columns=len(reg_layers) + 1,
                      note="seed, then the accentuation per reg layer (f after)")
    save_image(grid, Path(out) / "sweep.png")
    click.echo(f"-> {out}/sweep.png")
