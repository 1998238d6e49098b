"""Spatial masks for accentuations: where the objective's gradient is, and where it is attributed.

- `transparency_mask`: faccent's alpha. Accumulated |df/dx| averaged over colour channels, clipped at a
  percentile (faccent shows p = 20, i.e. the 80th percentile), divided by its maximum and blurred with
  a Gaussian of sigma 2 px.
- `attribution_heatmap`: where the objective is attributed in the seed (gradient x input at the seed,
  positive part, summed over colours), smoothed and divided by its 99th percentile (the accentuation
  paper's heat-map column).
- `heat_picture`: such a map drawn over its seed.
- `attribution_mask`: the attribution heat map with areas below ``threshold`` (0.3) of the peak set to
  0. Used to confine an accentuation to where the feature is.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers.model_state import frozen
from ..layers.tap import LayerTap
from ..objectives import Acts, Objective, evaluate
from ..transforms import gaussian_blur


def _quantile(maps: torch.Tensor, q: float) -> torch.Tensor:
    """Per-image quantile of (N, 1, H, W) maps -> (N, 1, 1, 1)."""
    return torch.quantile(maps.flatten(1).float(), q, dim=1)[:, None, None, None]


def transparency_mask(saliency: torch.Tensor, percentile: float = 80.0, sigma: float = 2.0
                      ) -> torch.Tensor:
    """faccent's alpha from accumulated gradients (N, C, H, W) -> (N, 1, H, W) in [0, 1]."""
    alpha = saliency.float().mean(1, keepdim=True)
    alpha = torch.minimum(alpha, _quantile(alpha, percentile / 100))
    alpha = alpha / alpha.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
    return gaussian_blur(alpha, sigma).clamp(0, 1)


def objective_gradient(model: nn.Module, objective: Objective, images: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (N,), d sum(values) / d images (N, 3, H, W)) on un-transformed images."""
    x = images.detach().clone().requires_grad_(True)
    with frozen(model), LayerTap(model, objective.layers) as tap:
        values = evaluate(objective, Acts(tap(x)))
    (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad


def attribution_heatmap(model: nn.Module, objective: Objective, seeds: torch.Tensor,
                        sigma: float | None = None, top: float = 0.99) -> torch.Tensor:
    """Where ``objective`` is attributed in ``seeds`` (N, 3, H, W): (N, 1, H, W), 1 at the ``top`` quantile.

    a = blur(relu(sum_c x * df/dx)) with sigma = H / 28 by default; returns a / quantile(a, top)
    (not clipped: values above 1 are the top 1 %).
    """
    _, grad = objective_gradient(model, objective, seeds)
    attribution = (grad * seeds).sum(1, keepdim=True).clamp_min(0)
    attribution = gaussian_blur(attribution, sigma if sigma is not None else seeds.shape[-1] / 28)
    return attribution / _quantile(attribution, top).clamp_min(1e-12)


def attribution_mask(model: nn.Module, objective: Objective, seeds: torch.Tensor,
                     sigma: float | None = None, threshold: float = 0.3, top: float = 0.99
                     ) -> torch.Tensor:
    """Where ``objective`` is attributed in ``seeds`` (N, 3, H, W): a (N, 1, H, W) mask in [0, 1].

    r = `attribution_heatmap` (sigma, top); mask = clamp((r - threshold) / (1 - threshold), 0, 1).
    """
    ratio = attribution_heatmap(model, objective, seeds, sigma, top)
    return ((ratio - threshold) / (1 - threshold)).clamp(0, 1)


def heat_picture(seed: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """A heat map (1, H, W) over its seed (3, H, W) as one picture: the seed in dim grey, the map
    (clipped to [0, 1]) in a black-red-yellow-white scale laid over it by its own value."""
    h = heat.float().clamp(0, 1)
    hot = torch.cat([(3 * h).clamp(0, 1), (3 * h - 1).clamp(0, 1), (3 * h - 2).clamp(0, 1)])
    grey = seed.float().mean(0, keepdim=True).expand(3, -1, -1) * 0.5
    return grey * (1 - h) + hot * h
