"""Superposition diagnostic: do a unit's excitation and inhibition come from different dictionary
atoms that share the layer's channels?

For an image, the attribution layer ℓ's activation a and gradient g = ∂f/∂a (each (C, H, W)) and a
dictionary learned at ℓ (`phosphene.dictionary`: codes c = ``encode(a)`` (K, H, W), components
d_k (C,), reconstruction â = Σ_k c_k d_k):

    B_k,p = c_k,p · <d_k, g_p>          atom k's attribution at position p
    R_p   = <a_p - Σ_k c_k,p d_k, g_p>  the residual: what the atoms do not reconstruct
    Σ_k B_k,p + R_p = <a_p, g_p> = Σ_c A_c,p     (exactly: A = a ⊙ g, `phosphene.attribution`)

That is activation × gradient in the atoms' coordinates (atom k's "activation" is its code, its
"gradient" the derivative of f along d_k). Per atom, E⁺_k = Σ_p ReLU(B_k,p) and E⁻_k = Σ_p
ReLU(-B_k,p); the shares P⁺_k = E⁺_k / Σ_j E⁺_j and P⁻_k likewise (over the atoms; the residual is
reported beside them as ``residual`` = Σ|R| / (Σ|B| + Σ|R|), the part of |attribution| no atom
carries: when it is large the shares describe a small part of the attribution).

Three numbers per image, each in [0, 1]:

- **interference** = 1 - Σ_k min(P⁺_k, P⁻_k): 1 when E⁺ and E⁻ are carried by different atoms
  (two features, one exciting, one inhibiting), 0 when the same atoms carry both in the same
  proportions (one feature that excites in one place and inhibits in another);
- **channel overlap** = Σ_c min(Q⁺_c, Q⁻_c), Q⁺_c = Σ_p ReLU(A_c,p) / E⁺ (and Q⁻ for E⁻): how far the
  *channels* carrying E⁺ and those carrying E⁻ are the same ones;
- **superposition** = interference × channel overlap: different atoms (features) carry E⁺ and E⁻,
  but they run through the same channels, so the channel view mixes what the atoms separate. An
  image is *flagged* when superposition ≥ ``threshold`` (default 0.5). With features aligned with
  channels, the channels already separate E⁺ from E⁻ (overlap ≈ 0): not flagged, however different
  the atoms.

`diagnose` computes this for images (a tension run's MTIs); `superposition_summary` is what
`tension_report` stores in tension.json, `superposition_plot` (in `superposition_plots`) the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..attribution import Attributor
from ..errors import PhospheneError
from ..models.wrapper import as_image_model
from ..units import Unit

THRESHOLD = 0.5


class Dictionary(Protocol):
    """What the diagnostic needs of a dictionary (`phosphene.dictionary.Dictionary` has it)."""

    components: torch.Tensor  # (K, C)
    name: str
    layer: str

    @property
    def channels(self) -> int: ...

    def encode(self, acts: torch.Tensor) -> torch.Tensor: ...

    def check_model(self, model_name: str, channels: int | None = None) -> None: ...


@dataclass(frozen=True)
class SuperpositionCheck:
    """Ask `tension_report` for the diagnostic: a ``dictionary`` learned at one of its attribution
    layers (`phosphene.dictionary.load_dictionary`) and the flag ``threshold``."""

    dictionary: Dictionary
    threshold: float = THRESHOLD

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise PhospheneError(f"the superposition threshold is in [0, 1], got {self.threshold}")


def atom_attribution(activation: torch.Tensor, gradient: torch.Tensor, dictionary: Dictionary
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B (N, K, H, W), R (N, H, W)) from a and g (N, C, H, W): atom attributions and the residual
    (module docstring); Σ_k B + R = Σ_c a ⊙ g."""
    if activation.dim() == 2:
        activation, gradient = activation[:, :, None, None], gradient[:, :, None, None]
    if activation.shape[1] != dictionary.channels:
        raise PhospheneError(f"the dictionary {dictionary.name} has {dictionary.channels}-channel atoms, "
                             f"the attribution layer has {activation.shape[1]} channels")
    a, g = activation.detach().double().cpu(), gradient.detach().double().cpu()
    codes = dictionary.encode(a.float()).double()  # (N, K, H, W)
    components = dictionary.components.double()  # (K, C)
    along = torch.einsum("nchw,kc->nkhw", g, components)  # <d_k, g_p>
    contributions = codes * along
    reconstruction = torch.einsum("nkhw,kc->nchw", codes, components)
    residual = ((a - reconstruction) * g).sum(1)
    return contributions, residual


def _shares(values: torch.Tensor) -> torch.Tensor:
    """(N, M) non-negative -> rows scaled to sum 1 (zero rows stay zero)."""
    total = values.sum(1, keepdim=True)
    return torch.where(total > 0, values / total.clamp_min(1e-300), torch.zeros_like(values))


def intersection(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Σ min(p, q) per row of two (N, M) distributions (0 when either row is all zero)."""
    return torch.minimum(p, q).sum(1)


@dataclass
class Superposition:
    """Per image (N,) and atom (K,): ``e_plus``/``e_minus`` (N, K) atom E⁺_k, E⁻_k; ``residual``
    (N,) share of |attribution| outside the atoms; ``interference``, ``channel_overlap``,
    ``superposition`` (N,) as in the module docstring; ``rows`` the images' row positions in their
    table, ``labels`` their names."""

    dictionary: str
    layer: str
    e_plus: np.ndarray
    e_minus: np.ndarray
    residual: np.ndarray
    interference: np.ndarray
    channel_overlap: np.ndarray
    superposition: np.ndarray
    threshold: float = THRESHOLD
    labels: Sequence[str] = ()

    @property
    def share_plus(self) -> np.ndarray:
        return _shares(torch.from_numpy(self.e_plus)).numpy()

    @property
    def share_minus(self) -> np.ndarray:
        return _shares(torch.from_numpy(self.e_minus)).numpy()

    @property
    def flagged(self) -> np.ndarray:
        return self.superposition >= self.threshold

    def top_atoms(self, i: int, sign: str, count: int = 3) -> list[tuple[int, float]]:
        """The ``count`` atoms carrying most of image ``i``'s E⁺ (``sign`` "+") or E⁻ ("-")."""
        shares = (self.share_plus if sign == "+" else self.share_minus)[i]
        order = np.argsort(-shares, kind="stable")[:count]
        return [(int(k), float(shares[k])) for k in order if shares[k] > 0]


def measure(activation: torch.Tensor, gradient: torch.Tensor, dictionary: Dictionary,
            threshold: float = THRESHOLD, layer: str | None = None,
            labels: Sequence[str] = ()) -> Superposition:
    """The diagnostic from a and g (N, C, H, W) at the dictionary's layer."""
    if not 0 <= threshold <= 1:
        raise PhospheneError(f"the superposition threshold is in [0, 1], got {threshold}")
    contributions, residual = atom_attribution(activation, gradient, dictionary)
    e_plus = contributions.clamp(min=0).sum((2, 3))
    e_minus = (-contributions).clamp(min=0).sum((2, 3))
    carried = contributions.abs().sum((1, 2, 3))
    rest = residual.abs().sum((1, 2))
    residual_share = torch.where(carried + rest > 0, rest / (carried + rest).clamp_min(1e-300),
                                 torch.zeros_like(rest))
    interference = 1 - intersection(_shares(e_plus), _shares(e_minus))
    attribution = activation.detach().double().cpu() * gradient.detach().double().cpu()
    if attribution.dim() == 2:
        attribution = attribution[:, :, None, None]
    channel_plus = attribution.clamp(min=0).sum((2, 3))
    channel_minus = (-attribution).clamp(min=0).sum((2, 3))
    overlap = intersection(_shares(channel_plus), _shares(channel_minus))
    empty = (e_plus.sum(1) <= 0) | (e_minus.sum(1) <= 0)  # nothing to separate
    interference = interference.masked_fill(empty, 0.0)
    return Superposition(dictionary.name, layer or dictionary.layer, e_plus.numpy(), e_minus.numpy(),
                         residual_share.numpy(), interference.numpy(), overlap.numpy(),
                         (interference * overlap).numpy(), threshold, list(labels))


def diagnose(model: nn.Module, images: torch.Tensor, target: Unit | str, dictionary: Dictionary,
             threshold: float = THRESHOLD, labels: Sequence[str] = (), batch_size: int = 8) -> Superposition:
    """The diagnostic for ``images`` (N, 3, H, W) in [0, 1] (e.g. a unit's MTIs), attributing
    ``target`` through the dictionary's layer."""
    model = as_image_model(model)
    dictionary.check_model(model.name)
    activations, gradients = [], []
    with Attributor(model, target, [dictionary.layer]) as attributor:
        for start in range(0, len(images), batch_size):
            part = attributor(images[start:start + batch_size].to(model.device), keep=True)
            layer = part.layers[dictionary.layer]
            activations.append(layer.activation.cpu())
            gradients.append(layer.gradient.cpu())
    return measure(torch.cat(activations), torch.cat(gradients), dictionary, threshold,
                   dictionary.layer, labels)


def superposition_summary(result: Superposition, paths: Sequence[str] | None = None,
                          count: int = 3) -> dict:
    """What tension.json stores: the definition, per image its top atoms of E⁺ and E⁻ with their
    shares and the three scores, and the means and flagged count."""
    images = []
    for i in range(len(result.interference)):
        images.append({
            **({"path": paths[i]} if paths is not None else {}),
            "atoms_e_plus": [{"atom": k, "share": s} for k, s in result.top_atoms(i, "+", count)],
            "atoms_e_minus": [{"atom": k, "share": s} for k, s in result.top_atoms(i, "-", count)],
            "interference": float(result.interference[i]),
            "channel_overlap": float(result.channel_overlap[i]),
            "superposition": float(result.superposition[i]),
            "residual": float(result.residual[i]), "flagged": bool(result.flagged[i])})
    return {
        "dictionary": result.dictionary, "layer": result.layer, "threshold": result.threshold,
        "definition": "phosphene.inhibition.superposition: atom attribution B_k = code_k * <component_k, "
                      "grad>; interference = 1 - sum_k min(P+_k, P-_k) of the atoms' shares of E+ and E-; "
                      "channel_overlap = sum_c min(Q+_c, Q-_c) of the channels' shares; superposition = "
                      "interference * channel_overlap, flagged at >= threshold; residual = share of "
                      "|attribution| outside the atoms",
        "mean_interference": float(np.mean(result.interference)) if images else float("nan"),
        "mean_channel_overlap": float(np.mean(result.channel_overlap)) if images else float("nan"),
        "mean_superposition": float(np.mean(result.superposition)) if images else float("nan"),
        "mean_residual": float(np.mean(result.residual)) if images else float("nan"),
        "flagged": int(result.flagged.sum()), "images": images}
