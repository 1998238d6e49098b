"""Does polysemanticity predict where visualizations fail? The polysemanticity score
(`phosphene.polysemanticity`) of every unit of a stimulus set, from its natural exemplars through
the studied model, and its rank correlation with the machine observer's per-unit score (and that
of the clustering-free dispersion, which does not tie when most units have one facet).

The correlation is Spearman's ρ over units, with two 95 % intervals: a percentile bootstrap over
units (``resamples`` draws with replacement, seeded; draws where either variable is constant are
dropped) and Fisher's z interval with the Spearman variance 1.06 / (n - 3) (Fieller, Hartley &
Pearson 1957). With few units both are wide: report them, not ρ alone. When many draws are dropped
(most units tie, one differs: draws without it have a constant variable) the bootstrap is
conditioned on the draws that contain the odd units and leans away from 0; ``resamples`` in the
result says how many were kept, and Fisher's interval is then the one to read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import PhospheneError
from ..io.images import load_image
from ..polysemanticity import MIN_EXEMPLARS, Polysemanticity, score_unit
from .stimuli import StimulusSet

RESAMPLES = 2000
DEFINITION = ("phosphene.polysemanticity: effective number of facets, exp(entropy of the facet sizes) of "
              "the k-means split (cosine, 2..max facets) of the unit's natural exemplars' activation "
              "vectors (pooled where the unit fires) whose silhouette most exceeds that of the same "
              "clustering on channel-shuffled copies; 1 facet when that excess is below min_excess")


def stimulus_polysemanticity(stimuli: StimulusSet, model: nn.Module, layers: Sequence[str] | None = None
                             ) -> dict[str, Polysemanticity]:
    """unit id -> its score, from its natural exemplars in ``stimuli`` through ``model``; units with
    fewer than `MIN_EXEMPLARS` exemplars get none (too few to cluster)."""
    scores = {}
    for unit in stimuli.units:
        if (layers and unit.layer not in layers) or len(unit.natural) < MIN_EXEMPLARS:
            continue
        images = torch.stack([load_image(stimuli.root / p) for p in unit.natural])
        scores[unit.id] = score_unit(model, images, unit.layer, unit.unit)
    return scores


@dataclass(frozen=True)
class Correlation:
    """Spearman ρ of ``n`` pairs with its bootstrap and Fisher 95 % intervals."""

    rho: float
    n: int
    bootstrap: tuple[float, float]
    fisher: tuple[float, float]
    resamples: int

    def to_dict(self) -> dict:
        return {"spearman": self.rho, "n": self.n, "bootstrap_95": list(self.bootstrap),
                "fisher_95": list(self.fisher), "resamples": self.resamples}


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ of two (n,) arrays; NaN when either is constant."""
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def spearman_interval(x: Sequence[float], y: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
                      ) -> Correlation:
    """Spearman's ρ of ``x`` and ``y`` with its intervals (module docstring)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) != len(y):
        raise PhospheneError(f"a correlation needs pairs, got {len(x)} and {len(y)} values")
    if len(x) < 4:
        raise PhospheneError(f"a correlation with an interval needs at least 4 units, got {len(x)}")
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, len(x), len(x))
        value = spearman(x[rows], y[rows])
        if value == value:
            draws.append(value)
    nan = float("nan")
    bootstrap = (float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))) if draws else (nan, nan)
    if rho == rho and abs(rho) < 1:
        z, half = math.atanh(rho), 1.96 * math.sqrt(1.06 / (len(x) - 3))
        fisher = (math.tanh(z - half), math.tanh(z + half))
    else:
        fisher = (nan, nan)
    return Correlation(rho, len(x), bootstrap, fisher, len(draws))


MEASURES = ("score", "dispersion")  # the polysemanticity, and the clustering-free dispersion


def correlate_scores(scores: Sequence, polysemanticity: dict[str, Polysemanticity], measure: str = "score",
                     resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Correlation | None]:
    """Per query kind: Spearman ρ over units of ``measure`` (a `Polysemanticity` field of `MEASURES`)
    with the unit score (`UnitScore` rows); None where fewer than 4 units have both."""
    out: dict[str, Correlation | None] = {}
    for query in dict.fromkeys(s.query for s in scores):
        pairs = [(getattr(polysemanticity[f"{s.layer}:{s.unit}"], measure), s.score) for s in scores
                 if s.query == query and f"{s.layer}:{s.unit}" in polysemanticity]
        out[query] = spearman_interval(*zip(*pairs), resamples, seed) if len(pairs) >= 4 else None
    return out


def polysemanticity_record(polysemanticity: dict[str, Polysemanticity], scores: Sequence, seed: int = 0
                           ) -> dict:
    """What OUT/polysemanticity.json holds: the definition, the score per unit, and per measure
    ("score": the polysemanticity, "dispersion") and query kind its correlation with the unit score."""
    correlation = {}
    for measure in MEASURES:
        found = correlate_scores(scores, polysemanticity, measure, seed=seed)
        correlation[measure] = {q: c.to_dict() if c else None for q, c in found.items()}
    return {"definition": DEFINITION, "correlation_with_unit_score": correlation,
            "units": {unit: p.to_dict() for unit, p in polysemanticity.items()}}
