"""Circuit check: are two images processed along the same units on the way to a feature?

For an objective f and an upstream layer l, the attribution of channel c in image x is
activation x gradient summed over space, ``A_c(x) = sum_{h,w} a_c(x)[h,w] * df/da_c(x)[h,w]``
(the first-order contribution of the channel to f). The circuit of x is the set of the k channels
with the largest A_c(x). Two images share their circuit to the extent that these sets overlap:
IoU = |S1 & S2| / |S1 | S2|, 1 for the same set, 0 for disjoint ones, k / (2C - k) expected by chance.

The paper's validation: an accentuation should be processed like its natural seed image (high IoU
with the seed), more than a noise-seeded visualization of the same feature is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import torch
from torch import nn

from ..attribution import Attributor
from ..errors import PhospheneError
from ..layers.model_state import frozen
from ..models.wrapper import as_image_model
from ..objectives import Objective


def unit_attribution(model: nn.Module, objective: Objective, layer: str, images: torch.Tensor
                     ) -> torch.Tensor:
    """A (N, C): activation x gradient of ``objective`` at ``layer``, summed over positions
    (`inhibition.attribution`'s A, one implementation for both)."""
    model = as_image_model(model)
    with frozen(model), Attributor(model, objective, [layer]) as attributor:
        result = attributor(images.detach().float().to(model.device), keep=True)
    return result.layers[layer].vector


def top_units(attribution: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) indices of the k largest attributions of each row of (N, C)."""
    if not 0 < k <= attribution.shape[1]:
        raise PhospheneError(f"k={k} must be in 1..{attribution.shape[1]} (the layer's channels)")
    return attribution.topk(k, dim=1).indices


def iou(units_a: torch.Tensor, units_b: torch.Tensor, channels: int) -> torch.Tensor:
    """(N,) intersection over union of the unit sets in rows of (N, k) index tensors."""
    a = torch.zeros(units_a.shape[0], channels, dtype=torch.bool).scatter_(1, units_a.cpu(), True)
    b = torch.zeros(units_b.shape[0], channels, dtype=torch.bool).scatter_(1, units_b.cpu(), True)
    return (a & b).sum(1).float() / (a | b).sum(1).clamp_min(1).float()


@dataclass
class CircuitOverlap:
    """Top-k attributed units of each image set at ``layer`` and their pairwise IoU."""

    layer: str
    k: int
    channels: int
    units: dict[str, torch.Tensor]  # name -> (N, k) channel indices
    attribution: dict[str, torch.Tensor]  # name -> (N, C)
    overlap: dict[str, torch.Tensor] = field(default_factory=dict)  # "a~b" -> (N,) IoU

    @property
    def chance(self) -> float:
        """Expected IoU of two random k-subsets of C channels (about k / (2C - k))."""
        return self.k / (2 * self.channels - self.k)

    def summary(self) -> dict[str, float]:
        """Mean IoU of each pair, plus the chance level."""
        return {**{pair: float(v.mean()) for pair, v in self.overlap.items()}, "chance": self.chance}


def circuit_overlap(model: nn.Module, objective: Objective, layer: str,
                    images: dict[str, torch.Tensor], k: int = 20) -> CircuitOverlap:
    """Compare the circuits of several image sets (e.g. seed, accentuation, visualization).

    ``images`` maps a name to (N, 3, H, W) images in [0, 1], row i of each set being compared with
    row i of the others (sets of one image are broadcast). Returns IoU for every pair of names.
    """
    if len(images) < 2:
        raise PhospheneError("give at least two image sets to compare")
    attribution = {name: unit_attribution(model, objective, layer, x) for name, x in images.items()}
    channels = next(iter(attribution.values())).shape[1]
    units = {name: top_units(a, k) for name, a in attribution.items()}
    n = max(u.shape[0] for u in units.values())
    units = {name: u.expand(n, -1) if u.shape[0] == 1 else u for name, u in units.items()}
    overlap = {f"{a}~{b}": iou(units[a], units[b], channels) for a, b in combinations(units, 2)}
    return CircuitOverlap(layer, k, channels, units, attribution, overlap)
