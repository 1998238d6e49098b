"""Facets against diverse renders (issue 21's acceptance): per unit, does each facet's visualization
drive the unit harder than its facet's best exemplar, and do facets differ more from each other than
the same number of diversity-term renders?

    python benchmarks/bench_facets.py RUN --layer _blocks.8 --units 0,3,7,11 [--weight 1]

RUN: a `phosphene mine` run with the layer (k >= facets). Distance: mean pairwise Euclidean distance
of the renders' activation vectors at the layer (channel means), and 1 - cosine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's phosphene

import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402
from phosphene.facets import render_facets  # noqa: E402
from phosphene.layers.tap import LayerTap  # noqa: E402


def spread(model, images: torch.Tensor, layer: str) -> tuple[float, float]:
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        vectors = tap(images)[layer].float().mean((-2, -1))
    pairs = list(itertools.combinations(range(len(vectors)), 2))
    euclid = sum(float((vectors[a] - vectors[b]).norm()) for a, b in pairs) / len(pairs)
    cosine = sum(1 - float(torch.cosine_similarity(vectors[a], vectors[b], 0)) for a, b in pairs) / len(pairs)
    return euclid, cosine


def pull(model, images: torch.Tensor, layer: str, directions: torch.Tensor) -> torch.Tensor:
    """The facet term <a, d_i> of each render (mean over positions, d_i unit length)."""
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        means = tap(images)[layer].float().mean((-2, -1))
    return (means * torch.nn.functional.normalize(directions, dim=1)).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--units", default="0,3,7,11")
    parser.add_argument("--facets", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--diversity", type=float, default=10.0)
    parser.add_argument("--weight", type=float, default=1.0, help="facet weight (render_facets' weight)")
    args = parser.parse_args()
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    print(f"load {os.getloadavg()[0]:.1f}; {args.facets} facets vs {args.facets} diverse renders, "
          f"{args.steps} steps, {args.size} px, "
          f"facet weight {args.weight}")
    print(f"phosphene from {phosphene.__file__}")
    print("| unit | facet values (best exemplar of the facet) | facets beat their exemplar | pull <a, d> | "
          "spread facets (L2 / 1-cos) | spread diverse (L2 / 1-cos) |")
    print("|---|---|---|---|---|---|")
    for unit in [int(u) for u in args.units.split(",")]:
        result = render_facets(model, args.run, args.layer, unit, n=args.facets, weight=args.weight,
                               steps=args.steps, size=args.size, progress=False)
        best = [result.facets.best_value(i) for i in range(result.facets.n)]
        beat = sum(float(v) > b for v, b in zip(result.unit_values, best))
        objective = obj.channel(args.layer, [unit] * args.facets) + args.diversity * obj.diversity(args.layer)
        diverse = phosphene.render(model, objective, steps=args.steps, size=args.size, progress=False)
        f_l2, f_cos = spread(model, result.render.images, args.layer)
        d_l2, d_cos = spread(model, diverse.images, args.layer)
        values = ", ".join(f"{float(v):.2f} ({b:.2f})" for v, b in zip(result.unit_values, best))
        facet_pull = pull(model, result.render.images, result.facets.facet_layer, result.facets.directions)
        pulls = ", ".join(f"{float(p):.2f}" for p in facet_pull)
        print(f"| {args.layer}:{unit} | {values} | {beat}/{result.facets.n} | {pulls} | "
              f"{f_l2:.2f} / {f_cos:.3f} | {d_l2:.2f} / {d_cos:.3f} |", flush=True)


if __name__ == "__main__":
    main()
