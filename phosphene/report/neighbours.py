"""Neighbours of a unit: the units of the same layer whose top-k exemplar sets (by channel mean)
overlap its own most (Jaccard index |S ∩ S'| / |S ∪ S'|), from the mining run alone."""

from __future__ import annotations

import numpy as np

from ._api import mining


def exemplar_sets(run: mining.MiningRun, layer: str, k: int) -> np.ndarray:
    """(units, images) boolean matrix: image i is among unit u's top-k by channel mean."""
    table = run.table()
    columns = {n: np.asarray(table.column(n)) for n in ("layer", "unit", "stat", "direction", "rank",
                                                          "image_index")}
    keep = ((columns["layer"] == layer) & (columns["stat"] == "mean") & (columns["direction"] == "top")
            & (columns["rank"] < k))
    units, images = columns["unit"][keep], columns["image_index"][keep]
    matrix = np.zeros((int(units.max()) + 1, int(images.max()) + 1), dtype=bool)
    matrix[units, images] = True
    return matrix


def neighbours(run: mining.MiningRun, layer: str, units: list[int], k: int, n: int
               ) -> dict[int, list[dict]]:
    """Per unit in ``units``: the ``n`` other units with the largest Jaccard index (ties: lower unit)."""
    sets = exemplar_sets(run, layer, k).astype(np.float32)
    inter = sets[units] @ sets.T
    sizes = sets.sum(1)
    union = sizes[units][:, None] + sizes[None, :] - inter
    jaccard = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    result = {}
    for row, unit in enumerate(units):
        scores = jaccard[row].copy()
        scores[unit] = -1.0
        order = np.lexsort((np.arange(len(scores)), -scores))[:n]
        result[unit] = [{"unit": int(u), "jaccard": round(float(scores[u]), 4)} for u in order
                        if scores[u] > 0]
    return result
