"""Compare per-unit scores (`phosphene experiment score`) with the matching experiment on the same
stimulus set (`phosphene experiment simulate` or people's responses).

Prints, per layer and query kind, the mean unit score beside the experiment's item accuracy for that
trial kind, the Pearson correlation over these cells, and over units: each unit's score against its
own accuracy in the experiment (the items whose correct row was that unit).

    python scripts/score_vs_experiment.py SCORES.parquet RESPONSES.csv
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import pyarrow.parquet as pq
import torch

from phosphene.psychophysics.analysis import load_responses


def pearson(xs: list[float], ys: list[float]) -> float:
    x, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12))


def unit_accuracy(rows: list[dict]) -> dict[tuple[str, str], tuple[float, int]]:
    """(unit id, kind) -> (accuracy, items): items whose correct reference row was that unit."""
    hits: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "catch":
            continue
        units = str(row["units"]).split("|")
        answer = [int(v) for v in str(row["answer"]).split()]
        assignment = [int(v) for v in str(row["assignment"]).split()]
        for q, correct_row in enumerate(answer):
            hits[(units[correct_row], row["kind"])].append(int(assignment[q] == correct_row))
    return {key: (sum(v) / len(v), len(v)) for key, v in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores")
    ap.add_argument("responses")
    args = ap.parse_args()
    scores = pq.read_table(args.scores).to_pylist()
    per_unit = unit_accuracy(load_responses(args.responses))
    kinds = {"visualization": "visualization", "exemplar": "exemplar"}
    cells_s, cells_a, units_s, units_a = [], [], [], []
    print(f"{'layer':<12} {'query':<14} {'mean score':>10} {'experiment acc':>14}")
    for layer in dict.fromkeys(s["layer"] for s in scores):
        for query in kinds:
            mine = [s for s in scores if s["layer"] == layer and s["query"] == query]
            pairs = [(s["score"], per_unit[(f"{layer}:{s['unit']}", kinds[query])]) for s in mine
                     if (f"{layer}:{s['unit']}", kinds[query]) in per_unit]
            if not pairs:
                continue
            score = sum(p[0] for p in pairs) / len(pairs)
            items = sum(p[1][1] for p in pairs)
            acc = sum(p[1][0] * p[1][1] for p in pairs) / items
            print(f"{layer:<12} {query:<14} {score:10.3f} {acc:14.3f}")
            cells_s.append(score)
            cells_a.append(acc)
            units_s += [p[0] for p in pairs]
            units_a += [p[1][0] for p in pairs]
    print(f"Pearson r over the {len(cells_s)} (layer, query) cells: {pearson(cells_s, cells_a):+.3f}")
    print(f"Pearson r over {len(units_s)} (unit, query) pairs: {pearson(units_s, units_a):+.3f}")


if __name__ == "__main__":
    main()
