"""The accentuation paper's Fig. 2 columns for `AccentuationResult.figure`: the seed's attribution heat
map and the feature's visualization.

``add_figure_columns(model, objective, result)`` fills ``result.heatmap`` (gradient x input of f in each
seed, `attribution_heatmap`) and ``result.visualization`` (f rendered from noise by the core `render`,
Fourier image and standard transforms, at the seeds' side: one render per distinct unit, so a
per-seed objective renders one image per seed); `AccentuationResult.figure` then shows them beside
the seed and after the accentuation.
"""

from __future__ import annotations

from torch import nn

from ..models.wrapper import as_image_model
from ..objectives import Objective
from ..render import as_objective, render
from .accentuate import AccentuationResult
from .masks import attribution_heatmap


def add_figure_columns(model: nn.Module, objective: Objective | str, result: AccentuationResult,
                       steps: int = 128, seed: int = 0, progress: bool | None = False
                       ) -> AccentuationResult:
    """Set ``result.heatmap`` (N, 1, H, W) and ``result.visualization`` (M, 3, H, W); returns ``result``.

    ``objective`` is the one ``result`` accentuated (one unit, or one per seed); ``steps`` and ``seed``
    are the visualization's render settings."""
    objective = as_objective(objective)
    seeds, group = result.seeds, len(result.lams)
    device = as_image_model(model).device
    result.heatmap = attribution_heatmap(model, objective, seeds.to(device)).detach().cpu()
    per_seed = objective.batch_size not in (None, 1)
    rendered = render(model, objective, steps=steps, size=seeds.shape[-1], seed=seed,
                      batch=seeds.shape[0] if per_seed else 1, progress=progress)
    images = rendered.images if per_seed else rendered.images.expand(seeds.shape[0], -1, -1, -1)
    result.visualization = images.repeat_interleave(group, 0).contiguous()
    return result
