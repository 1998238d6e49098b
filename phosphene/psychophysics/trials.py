"""Trials of the matching task (Klein, Brendel & Wichmann): 3 units of one layer per trial.

Every trial shows three *reference* rows (one per unit, ``n`` natural exemplars each) and three
*query* groups (``n`` images each, in shuffled order); the observer assigns each query group to a
reference row. ``answer[q]`` is the correct row of query group ``q``.

- exemplar trial: the unit's natural exemplars split in two halves, one half as reference, one as query;
- visualization trial: natural exemplars as reference, the unit's feature visualizations as query;
- catch trial: the queries are the reference images themselves (an obvious answer, to check attention).

Design (`design`): every condition (kind x depth x images per unit) gets the same number of trials;
the units of a depth enter trials equally often (consecutive triples of a stream of shuffled passes
over the units), the six possible answers rotate through each condition, and the order of the
trials is shuffled. Everything is drawn from ``random.Random(seed)``, so a seed reproduces it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ..errors import PhospheneError
from .stimuli import StimulusSet, StimulusUnit

KINDS = ("exemplar", "visualization")
IMAGES_PER_UNIT = (1, 3, 5)
UNITS_PER_TRIAL = 3


@dataclass(frozen=True)
class Trial:
    """One matching trial. Image entries are paths relative to the stimulus folder."""

    index: int
    kind: str  # "exemplar", "visualization" or "catch"
    depth: str
    layer: str
    images_per_unit: int
    units: tuple[str, ...]  # unit id of each reference row
    references: tuple[tuple[str, ...], ...]  # (3, n)
    queries: tuple[tuple[str, ...], ...]  # (3, n), shuffled
    answer: tuple[int, ...]  # answer[q] = reference row of query group q

    @property
    def catch(self) -> bool:
        return self.kind == "catch"

    def public(self) -> dict:
        """What a participant's browser may see: no answer, no unit identities."""
        return {"index": self.index, "images_per_unit": self.images_per_unit,
                "references": [list(r) for r in self.references],
                "queries": [list(q) for q in self.queries]}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Trial:
        return cls(data["index"], data["kind"], data["depth"], data["layer"], data["images_per_unit"],
                   tuple(data["units"]), tuple(tuple(r) for r in data["references"]),
                   tuple(tuple(q) for q in data["queries"]), tuple(data["answer"]))

    def score(self, assignment: Sequence[int]) -> int:
        """Number of query groups assigned to their own unit (0-3)."""
        return sum(int(a == b) for a, b in zip(assignment, self.answer))


def _unit_triples(units: list[StimulusUnit], count: int, rng: random.Random) -> list[list[StimulusUnit]]:
    """``count`` triples of distinct units; every unit used as evenly as possible."""
    triples: list[list[StimulusUnit]] = []
    pool: list[StimulusUnit] = []
    while len(triples) < count:
        if len(pool) < UNITS_PER_TRIAL:
            fresh = units[:]
            rng.shuffle(fresh)
            # carry the leftovers first; avoid repeating one of them in the same triple
            fresh = [u for u in fresh if u not in pool] + [u for u in fresh if u in pool]
            pool = pool + fresh
        triple, rest = [], []
        for unit in pool:
            (triple if len(triple) < UNITS_PER_TRIAL and unit not in triple else rest).append(unit)
        triples.append(triple)
        pool = rest
    return triples


def _make_trial(kind: str, depth: str, n: int, triple: list[StimulusUnit], answer: tuple[int, ...],
                rng: random.Random) -> Trial:
    references, queries_by_unit = [], []
    for unit in triple:
        if kind == "exemplar":
            chosen = rng.sample(unit.natural, 2 * n)
            references.append(tuple(chosen[:n]))
            queries_by_unit.append(tuple(chosen[n:]))
        elif kind == "visualization":
            references.append(tuple(rng.sample(unit.natural, n)))
            queries_by_unit.append(tuple(rng.sample(unit.visualizations, n)))
        else:  # catch: the queries are the references
            chosen = tuple(rng.sample(unit.natural, n))
            references.append(chosen)
            queries_by_unit.append(chosen)
    queries = tuple(queries_by_unit[row] for row in answer)
    return Trial(-1, kind, depth, triple[0].layer, n, tuple(u.id for u in triple), tuple(references),
                 queries, answer)


def check_stimuli(stimuli: StimulusSet, images_per_unit: Sequence[int]) -> None:
    """`PhospheneError` unless every depth has >= 3 units with enough images for the largest n."""
    n = max(images_per_unit)
    groups = stimuli.by_depth()
    if not groups:
        raise PhospheneError("the stimulus set has no units")
    for depth, units in groups.items():
        if len(units) < UNITS_PER_TRIAL:
            raise PhospheneError(f"{depth} has {len(units)} units; a trial needs {UNITS_PER_TRIAL}")
        for unit in units:
            if len(unit.natural) < 2 * n or len(unit.visualizations) < n:
                raise PhospheneError(
                    f"unit {unit.id} has {len(unit.natural)} naturals and {len(unit.visualizations)} "
                    f"visualizations; {n} images per unit need {2 * n} and {n}")


def design(stimuli: StimulusSet, trials_per_condition: int = 2,
           images_per_unit: Sequence[int] = IMAGES_PER_UNIT, catch_trials: int = 2, seed: int = 0,
           kinds: Sequence[str] = KINDS) -> list[Trial]:
    """The trial list for one participant (see the module docstring); reproducible from ``seed``."""
    if trials_per_condition < 1:
        raise PhospheneError("trials_per_condition must be at least 1")
    check_stimuli(stimuli, images_per_unit)
    rng = random.Random(seed)
    answers = list(itertools.permutations(range(UNITS_PER_TRIAL)))
    trials: list[Trial] = []
    for depth, units in stimuli.by_depth().items():
        for kind in kinds:
            for n in images_per_unit:
                order = answers[:]
                rng.shuffle(order)
                triples = _unit_triples(units, trials_per_condition, rng)
                for i, triple in enumerate(triples):
                    trials.append(_make_trial(kind, depth, n, triple, order[i % len(order)], rng))
    groups = list(stimuli.by_depth().items())
    for i in range(catch_trials):
        depth, units = groups[i % len(groups)]
        triple = _unit_triples(units, 1, rng)[0]
        trials.append(_make_trial("catch", depth, min(images_per_unit), triple, rng.choice(answers), rng))
    rng.shuffle(trials)
    return [Trial(i, t.kind, t.depth, t.layer, t.images_per_unit, t.units, t.references, t.queries,
                  t.answer) for i, t in enumerate(trials)]


def participant_seed(seed: int, participant: int) -> int:
    """The design seed of participant number ``participant`` of an experiment seeded with ``seed``."""
    return seed * 1_000_003 + participant
