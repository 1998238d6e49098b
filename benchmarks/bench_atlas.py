"""Atlas icons rendered in batches vs one by one (issue 5), in one run on the same machine.

Lays out a 20x20 attribution atlas of the 500 sample images, then renders the icons of all kept cells
twice with the same settings: `render_icons(batch=B)` and one `render` per icon (batch=1). Prints the
wall times, the ratio, and the mean alignment objective of both (equal work, equal quality).

    .venv/bin/python benchmarks/bench_atlas.py --steps 32 --icon-size 48
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import phosphene
from phosphene.attribution import parse_target
from phosphene.inhibition.atlas import (
    attribution_vectors,
    bin_layout,
    normalize_layout,
    render_icons,
    select_images,
    umap_layout,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/imagenet-samples")
    parser.add_argument("--target", default="_blocks.9:5")
    parser.add_argument("--attr-layer", default="_blocks.6")
    parser.add_argument("--grid", type=int, default=20)
    parser.add_argument("--min-points", type=int, default=1)
    parser.add_argument("--size", type=int, default=128, help="side of the dataset images")
    parser.add_argument("--icon-size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = phosphene.load_model()
    paths = phosphene.io.images.list_images(args.images)
    images = torch.stack([phosphene.load_image(p, args.size) for p in paths])
    f, vectors = attribution_vectors(model, images, parse_target(args.target), args.attr_layer)
    keep = select_images(f, np.linalg.norm(vectors, axis=1), 100)
    xy = normalize_layout(umap_layout(vectors[keep]))
    cells = bin_layout(xy, args.grid, args.min_points)
    directions = np.stack([vectors[keep][c.members].mean(0) for c in cells])
    print(f"{len(paths)} images, {len(keep)} laid out, {args.grid}x{args.grid} grid: {len(cells)} icons")
    common = dict(size=args.icon_size, steps=args.steps, cossim_pow=1.0, progress=False)

    render_icons(model, args.attr_layer, directions[:2], batch=2, **{**common, "steps": 2})  # warm-up
    start = time.perf_counter()
    batched = render_icons(model, args.attr_layer, directions, batch=args.batch, **common)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    single = torch.cat([render_icons(model, args.attr_layer, directions[k:k + 1], batch=1, **common)
                        for k in range(len(directions))])
    t_single = time.perf_counter() - start

    def quality(icons: torch.Tensor) -> float:
        objective = phosphene.objectives.alignment(args.attr_layer, torch.as_tensor(directions), 1.0)
        with phosphene.LayerTap(model, [args.attr_layer]) as tap, torch.no_grad():
            return float(objective(tap(icons)).mean())

    print(f"batched (batch {args.batch}): {t_batched:7.1f} s  objective {quality(batched):.3f}")
    print(f"one by one:          {t_single:7.1f} s  objective {quality(single):.3f}")
    print(f"one by one / batched: x{t_single / t_batched:.2f}")


if __name__ == "__main__":
    main()
