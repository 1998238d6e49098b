"""A per-unit machine interpretability score, in the spirit of the Machine Interpretability Score
(Zimmermann, Klein & Brendel 2024): many random two-alternative forced-choice (2-AFC) trials per
unit, decided by similarity in a perceptual feature space.

One trial for unit u: a *query* of ``k`` images of u (its feature visualizations, or separately its
natural exemplars), and two *candidate* groups of ``k`` natural exemplars each: u's own held-out
exemplars and those of another unit v of the same layer (drawn at random). The observer picks the
candidate group whose mean feature is more similar (cosine) to the query's mean feature; a tie
counts 1/2. The unit's score is the fraction of trials it gets right (chance 0.5, perfect 1).

Held out: a unit's exemplars are split by rank into a *candidate* half (ranks 0, 2, 4, ...) and a
*query* half (ranks 1, 3, 5, ...); exemplar queries come from the query half only, so a query never
contains a candidate image, and both query kinds are judged against the same candidate pool.
Features: the machine observer's (`MachineObserver.embed`: pooled, L2-normalized activations).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import torch

from ..errors import PhospheneError
from ..io.display import new_figure
from ..mining.store import write_parquet
from .stimuli import DEPTHS, StimulusSet

QUERIES = ("visualization", "exemplar")


@dataclass
class UnitFeatures:
    """Features of one unit's images: (n, D) rows, L2-normalized; naturals best first."""

    id: str
    layer: str
    depth: str
    unit: int
    naturals: torch.Tensor
    visualizations: torch.Tensor


@dataclass
class UnitScore:
    """One unit's score for one query kind."""

    layer: str
    depth: str
    unit: int
    query: str
    trials: int
    correct: float
    score: float
    polysemanticity: float | None = None  # `phosphene.polysemanticity`, when computed
    facets: int | None = None


def split_naturals(naturals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidate half: ranks 0, 2, ...; query half: ranks 1, 3, ...) of a unit's exemplars."""
    return naturals[0::2], naturals[1::2]


def _group(rows: torch.Tensor, k: int, rng: random.Random) -> torch.Tensor:
    """Mean feature of ``k`` rows drawn without replacement."""
    return rows[rng.sample(range(rows.shape[0]), k)].mean(0)


def score_unit(unit: UnitFeatures, others: Sequence[UnitFeatures], query: str, trials: int, k: int,
               rng: random.Random) -> UnitScore:
    """``trials`` 2-AFC trials of ``unit`` against random units of ``others`` (see the module doc)."""
    if query not in QUERIES:
        raise PhospheneError(f"unknown query kind {query!r}; use one of {', '.join(QUERIES)}")
    if not others:
        raise PhospheneError(f"{unit.layer} needs at least two units to score {unit.id}")
    own, query_half = split_naturals(unit.naturals)
    pool = unit.visualizations if query == "visualization" else query_half
    correct = 0.0
    for _ in range(trials):
        other = others[rng.randrange(len(others))]
        q = _group(pool, k, rng)
        positive, negative = _group(own, k, rng), _group(split_naturals(other.naturals)[0], k, rng)
        s_pos, s_neg = float(q @ positive), float(q @ negative)
        correct += 1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0
    return UnitScore(unit.layer, unit.depth, unit.unit, query, trials, correct, correct / trials)


def check_units(units: Sequence[UnitFeatures], k: int) -> None:
    """`PhospheneError` unless every unit has enough images for groups of ``k``."""
    if k < 1:
        raise PhospheneError("images per group must be at least 1")
    for unit in units:
        candidates, queries = split_naturals(unit.naturals)
        if min(candidates.shape[0], queries.shape[0]) < k or unit.visualizations.shape[0] < k:
            raise PhospheneError(
                f"unit {unit.id} has {unit.naturals.shape[0]} exemplars and "
                f"{unit.visualizations.shape[0]} visualizations; groups of {k} need {2 * k} and {k}")


def score_units(units: Sequence[UnitFeatures], trials: int = 200, k: int = 3,
                queries: Sequence[str] = QUERIES, seed: int = 0) -> list[UnitScore]:
    """Scores of every unit for each query kind; the other units are those of the same layer."""
    if trials < 1:
        raise PhospheneError("trials must be at least 1")
    check_units(units, k)
    rng = random.Random(seed)
    scores = []
    for query in queries:
        for unit in units:
            others = [u for u in units if u.layer == unit.layer and u.id != unit.id]
            scores.append(score_unit(unit, others, query, trials, k, rng))
    return scores


def stimulus_features(stimuli: StimulusSet, observer, layers: Sequence[str] | None = None,
                      progress: bool | None = None) -> list[UnitFeatures]:
    """The observer's features of a stimulus set's units (only those of ``layers`` if given)."""
    units = [u for u in stimuli.units if not layers or u.layer in layers]
    if layers:
        missing = [layer for layer in layers if not any(u.layer == layer for u in units)]
        if missing:
            have = ", ".join(dict.fromkeys(u.layer for u in stimuli.units))
            raise PhospheneError(f"the stimulus set has no units of {missing[0]} (it has {have})")
    root = stimuli.root
    observer.embed(sorted(root / p for u in units for p in u.natural + u.visualizations),
                   progress=progress)
    return [UnitFeatures(u.id, u.layer, u.depth, u.unit, observer.embed([root / p for p in u.natural]),
                         observer.embed([root / p for p in u.visualizations])) for u in units]


# -- output ---------------------------------------------------------------------------------------
def write_scores(scores: Sequence[UnitScore], path: str | Path, **columns: str) -> None:
    """One Parquet row per (unit, query kind); ``columns`` adds constant columns (model, observer)."""
    rows = [asdict(s) for s in scores]
    table = {key: [r[key] for r in rows] for key in asdict(scores[0])} if rows else {}
    for name, value in columns.items():
        table[name] = [value] * len(rows)
    write_parquet(path, pa.table(table))


def layer_summary(scores: Sequence[UnitScore]) -> list[dict]:
    """Per (layer, query kind): units, mean, median, min and max score, in depth order."""
    order = {d: i for i, d in enumerate(DEPTHS)}
    groups: dict[tuple[str, str, str], list[float]] = {}
    for s in scores:
        groups.setdefault((s.depth, s.layer, s.query), []).append(s.score)
    out = []
    for (depth, layer, query), values in sorted(groups.items(),
                                                key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2])):
        ordered = sorted(values)
        out.append({"depth": depth, "layer": layer, "query": query, "units": len(values),
                    "mean": sum(values) / len(values), "median": float(torch.tensor(ordered).median()),
                    "min": ordered[0], "max": ordered[-1]})
    return out


def summary_text(summary: Sequence[dict]) -> str:
    lines = [f"{'depth':<7} {'layer':<14} {'query':<14} {'units':>5} {'mean':>6} {'median':>6} "
             f"{'min':>5} {'max':>5}"]
    for row in summary:
        lines.append(f"{row['depth']:<7} {row['layer']:<14} {row['query']:<14} {row['units']:>5} "
                     f"{row['mean']:6.3f} {row['median']:6.3f} {row['min']:5.2f} {row['max']:5.2f}")
    return "\n".join(lines)


def plot_scores(scores: Sequence[UnitScore], path: str | Path, title: str | None = None) -> None:
    """Per-layer distribution of the unit scores: one dot per unit, the median as a bar, chance dashed."""
    if not scores:
        raise PhospheneError("no scores to plot")
    layers = list(dict.fromkeys(s.layer for s in sorted(
        scores, key=lambda s: DEPTHS.index(s.depth) if s.depth in DEPTHS else 9)))
    colours = {"exemplar": "#1f77b4", "visualization": "#d62728"}
    names = {"exemplar": "query: natural exemplars", "visualization": "query: visualizations"}
    fig = new_figure((1.8 + 1.6 * len(layers), 3.4))
    ax = fig.subplots()
    jitter = random.Random(0)
    for qi, query in enumerate(QUERIES):
        for li, layer in enumerate(layers):
            values = [s.score for s in scores if s.layer == layer and s.query == query]
            if not values:
                continue
            x = li + (qi - 0.5) * 0.3
            ax.scatter([x + jitter.uniform(-0.06, 0.06) for _ in values], values, s=14,
                       color=colours[query], alpha=0.7, label=names[query] if li == 0 else None)
            ax.hlines(float(torch.tensor(values).median()), x - 0.12, x + 0.12, color=colours[query], lw=2)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    depth = {s.layer: s.depth for s in scores}
    ax.set_xticks(range(len(layers)), [f"{depth[layer]}\n{layer}" for layer in layers], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("unit score (2-AFC accuracy)")
    ax.set_title(title or "per-unit machine interpretability score", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
