"""Neuron interaction (Olah et al. 2017): interpolating between two units, aligned or not, and random
directions of a layer.

- `render_interpolation`: a strip of ``frames`` images, frame i maximizing ``(1 - t) a + t b``
  (`objectives.interpolate`). Aligned (lucid's aligned interpolation notebook): the frames share
  low-resolution parameters (`param.aligned.AlignedFrames`), all frames of one step see the same
  random transform (`SharedDraws`), and `frame_alignment` penalizes activation differences between
  neighbouring frames; unaligned: independent Fourier frames, same transforms, no penalty.
- `random_directions`: ``count`` random directions of a layer's activation space as one batch.
- `neighbour_distance`: how far apart neighbouring frames are (RMS pixel difference).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import objectives as obj
from .errors import PhospheneError
from .layers.tap import LayerTap
from .models.input_shape import fit_side
from .models.wrapper import as_image_model
from .objectives import Acts, Objective
from .param.aligned import AlignedFrames
from .render import RenderConfig, RenderResult, render
from .settings import with_overrides
from .transforms import Compose, ending_at, make_transforms
from .units import unit

__all__ = ["SharedDraws", "frame_alignment", "neighbour_distance", "random_directions",
           "render_interpolation"]


def random_directions(layer: str, count: int, seed: int = 0, repeat: int = 1) -> Objective:
    """``count`` directions drawn from N(0, I) in the channel space of ``layer`` (seeded; drawn when
    the channel count is first seen), each rendered ``repeat`` times: `objectives.direction`."""
    if count < 1 or repeat < 1:
        raise PhospheneError("random_directions needs count >= 1 and repeat >= 1")
    made: dict[int, Objective] = {}

    def fn(acts: Acts) -> torch.Tensor:
        channels = acts[layer].shape[1]
        if channels not in made:
            vectors = torch.randn(count, channels, generator=torch.Generator().manual_seed(seed))
            made[channels] = obj.direction(layer, vectors.repeat_interleave(repeat, 0))
        return made[channels](acts)

    labels = [f"{layer}:random{i}" for i in range(count) for _ in range(repeat)]
    batch = count * repeat
    return Objective(fn, [layer], f"random_directions({layer}, {count}, seed={seed})",
                     batch if batch > 1 else None, labels)


def frame_alignment(layer: str, decay_ratio: float = 2.0, reach: int = 4) -> Objective:
    """Activation distance between neighbouring frames (lucid's ``alignment``): for frames i and
    i + d (d <= ``reach``), mean squared difference of ``layer`` / ``decay_ratio ** d``, half of it
    charged to each frame; the batch's sum is lucid's penalty. Subtract it. View k of one frame is
    compared with view k of the other (use `SharedDraws` so they share their transform)."""

    def fn(acts: Acts) -> torch.Tensor:
        copies = getattr(acts, "copies", 1)
        act = acts[layer].float()
        frames = act.reshape(act.shape[0] // copies, -1)
        values = torch.zeros(frames.shape[0], device=act.device)
        for d in range(1, min(reach, frames.shape[0] - 1) + 1):
            gap = (frames[d:] - frames[:-d]).pow(2).mean(1) / decay_ratio ** d
            values = values + torch.cat([gap, gap.new_zeros(d)]) / 2 + torch.cat([gap.new_zeros(d), gap]) / 2
        return values.repeat_interleave(copies) if copies > 1 else values

    return Objective(fn, [layer], f"frame_alignment({layer})")


class SharedDraws(Compose):
    """A transform set whose random draw is shared by all images: view k of every image gets the
    same warp (lucid transforms the whole batch at once), so neighbouring frames stay comparable."""

    def __init__(self, transforms: Compose):
        super().__init__(transforms.transforms)

    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None,
                 copies: int = 1) -> torch.Tensor:
        n = images.shape[0]
        if copies > 1:
            images = images.repeat_interleave(copies, 0)
        side = images.shape[-1]
        if self.geometric:
            maps = self.sample(copies, side, gen, images.device).repeat(n, 1, 1)
            images = self._warp(images, maps, self.out_size(side))
        return self._add_noise(images, gen)


def neighbour_distance(images: torch.Tensor) -> float:
    """Mean RMS pixel difference between neighbouring images of (N, C, H, W) (N >= 2)."""
    if images.shape[0] < 2:
        raise PhospheneError("neighbour_distance needs at least two images")
    images = images.detach()
    return float((images[1:] - images[:-1]).pow(2).flatten(1).mean(1).sqrt().mean())


def _layer_of(objective: Objective) -> str:
    inner = sorted(objective.layers)
    if not inner:
        raise PhospheneError("give alignment_layer: the objective reads no layer")
    return inner[0]


def render_interpolation(model: nn.Module, a: Objective | str, b: Objective | str, frames: int = 5,
                         config: RenderConfig | None = None, *, aligned: bool = True,
                         alignment_layer: str | None = None, alignment_weight: float = 0.1,
                         transforms: str | Compose = "standard", progress: bool | None = None,
                         **overrides: Any) -> RenderResult:
    """Render ``frames`` images interpolating from unit ``a`` to unit ``b`` (unit strings or
    single-image objectives); see the module docstring for ``aligned``. ``alignment_layer`` (default:
    the layer of ``a``) and ``alignment_weight`` set the neighbour penalty; ``overrides`` are
    `RenderConfig` fields (steps, size, seed, ...). The result's ``final`` is the interpolation
    objective of each frame (without the penalty)."""
    config = with_overrides(RenderConfig, config, overrides, "render_interpolation")
    first, last = unit(a) if isinstance(a, str) else a, unit(b) if isinstance(b, str) else b
    objective = obj.interpolate(first, last, frames)
    model = as_image_model(model)
    size = config.size or model.input_size
    draws = SharedDraws(ending_at(make_transforms(transforms, size), size, model.fixed_side))
    if not aligned:
        return render(model, objective, config, param="fourier", transforms=draws, progress=progress,
                      batch=frames, size=size)
    layer = alignment_layer or _layer_of(first)
    penalized = objective - alignment_weight * frame_alignment(layer)
    param = AlignedFrames(frames, size, generator=torch.Generator().manual_seed(config.seed),
                          channels=model.channels)
    result = render(model, penalized, config, param=param, transforms=draws, progress=progress,
                    batch=frames, size=size)
    return _without_penalty(model, result, objective)


def _without_penalty(model: nn.Module, result: RenderResult, objective: Objective) -> RenderResult:
    """``result`` with ``final`` re-evaluated on the interpolation objective alone (clean frames)."""
    model = as_image_model(model)
    with LayerTap(model, objective.layers) as tap, torch.no_grad():
        clean = fit_side(result.images.to(model.device), model.fixed_side)
        result.final = obj.evaluate(objective, Acts(tap(clean))).float().cpu()
    result.labels = [objective.label(i) for i in range(len(result.labels))]
    result.settings["penalty"] = result.settings["objective"]
    result.settings["objective"] = objective.name
    return result
