"""β of feature accentuation: the weight that makes f and R pull equally hard at step 0.

faccent sets β = sum|df/dθ| / sum|dR/dθ| with θ its parameters (phase and magnitude gate of the
seeded phase parameterization), so its λ = 1 means "equal gradient L1 norms w.r.t. the parameters".
`balance` does the same by default (``balance_by="params"``) for any seeded parameterization, or
balances the gradients w.r.t. the image's pixels (``"image"``), which gives the same β whatever
the parameterization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import PhospheneError
from ..layers.tap import LayerTap
from ..objectives import Acts, Objective
from ..param import ConfinedImage, seeded_param
from ..param.core import _logit

if TYPE_CHECKING:
    from .crops import LatentDistance, SharedCrops

GATE_INIT = 5.0  # faccent's magnitude-gate start; beta is measured at the image this gate gives

BALANCES = ("params", "image")
STYLES = ("faccent", "phosphene")


def _probe_leaves(seeds: torch.Tensor, param: str, confine: torch.Tensor | None, balance_by: str,
                  style: str = "faccent") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The probe image (faccent's step-0 image) and the leaves that β's gradients are taken for.

    "image": the probe itself. "params": the parameters of a seeded parameterization ``param``
    whose output is the probe; for "phase" they are faccent's phase and magnitude gate, with the
    gate's gradient sigmoid'(5)|F| exactly as faccent has it (see `SeededPhaseImage`). In the
    faccent style the phase parameterization of the seeds is the probe (its step 0 is faccent's).
    """
    if param == "phase" and style == "faccent":
        inner = seeded_param("phase", seeds).to(seeds.device)
        probe = inner()
    else:
        gate = torch.sigmoid(torch.tensor(GATE_INIT))
        probe = torch.sigmoid(gate * _logit(seeds)).detach()
        inner = seeded_param(param, probe, **({"style": "exact"} if param == "phase" else {}))
        inner = inner.to(seeds.device)
    if balance_by == "image":
        probe = probe.detach().requires_grad_(True)
        return probe, [probe]
    image = ConfinedImage(inner, seeds, confine)()
    return image, [p for p in inner.parameters() if p.requires_grad]


def balance(model: nn.Module, objective: Objective, distance: LatentDistance, crops: SharedCrops,
            copies: int, gen: torch.Generator, balance_by: str = "params", param: str = "phase",
            confine: torch.Tensor | None = None, style: str = "faccent") -> torch.Tensor:
    """beta per seed (N,): sum|df/dθ| / sum|dR/dθ| over one draw of crops.

    θ are the parameterization's parameters (``balance_by="params"``, faccent's balance: for the
    phase parameterization, its phase and magnitude gate) or the image's pixels (``"image"``, the
    same β for every parameterization). R has a cusp at x = x0 (its gradient there is undefined),
    so both gradients are taken where faccent's optimization starts: sigmoid(sigmoid(5) * logit(x0)),
    the seed with its logits scaled by 0.993 (its magnitude gate at initialisation). ``style``
    "faccent" takes the logits as faccent does (clamped at 1e-6), "phosphene" clamps at 1e-4.
    """
    if balance_by not in BALANCES:
        raise PhospheneError(f"unknown balance {balance_by!r}; use one of {', '.join(BALANCES)}")
    seeds = distance.seeds
    probe, leaves = _probe_leaves(seeds, param, confine, balance_by, style)
    crops.pending = crops.draw(seeds.shape[0], copies, seeds.shape[-1], gen, seeds.device, seeds.shape[1])
    views = crops.apply_draw(probe, crops.pending)
    with LayerTap(model, objective.layers | {distance.layer}) as tap:
        acts = Acts(tap(views), copies)
        f_rows, r_rows = objective(acts), distance(acts)
    grads_f = torch.autograd.grad(f_rows.float().sum(), leaves, retain_graph=True)
    grads_r = torch.autograd.grad(r_rows.sum(), leaves)

    def l1(grads) -> torch.Tensor:
        return sum(g.abs().flatten(1).sum(1) for g in grads)

    return l1(grads_f) / l1(grads_r).clamp_min(1e-12)
