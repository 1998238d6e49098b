"""Activation vectors of images pooled where a unit fires: what is where the unit responds
(`phosphene.facets` clusters them into facets, `phosphene.polysemanticity` counts the facets)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PhospheneError
from ..models.wrapper import as_image_model
from .tap import LayerTap


def pooled_vectors(model: nn.Module, images: torch.Tensor, layer: str, unit: int, facet_layer: str
                   ) -> torch.Tensor:
    """(N, C) activation vectors at ``facet_layer``, averaged over positions weighted by the unit's
    positive activation map (resized to the facet layer's grid; uniform where the unit is silent)."""
    with torch.no_grad(), LayerTap(model, [layer, facet_layer]) as tap:
        acts = tap(images.to(as_image_model(model).device))
    weight = acts[layer][:, unit:unit + 1].float().clamp_min(0)
    features = acts[facet_layer].float()
    if features.dim() != 4:
        raise PhospheneError(f"facets need a (N, C, H, W) map at {facet_layer}; got {tuple(features.shape)}")
    weight = F.interpolate(weight, size=features.shape[-2:], mode="bilinear", align_corners=False)
    total = weight.sum((-2, -1), keepdim=True)
    weight = torch.where(total > 0, weight / total.clamp_min(1e-12),
                         torch.full_like(weight, 1.0 / weight[0, 0].numel()))
    return (features * weight).sum((-2, -1)).cpu()
