"""Atlas icon diversity (issue 26): how different are an attribution atlas' icons, per icon direction?

Builds the README's attribution atlas layout once (``--target`` through ``--attr-layer`` on an image
folder, the `build_atlas` defaults: selection, UMAP, grid, cells), then renders the icons of every
kept cell once per icon direction in ``--methods`` (`atlas_icons.ICON_DIRECTIONS`; "mean" is the
previous recipe) with the same seed and settings, and prints per method:

  pixels       mean pairwise RMS distance between icons (per pixel and colour, 0..1)
  activation   mean pairwise Euclidean distance between the icons' spatially averaged activations
               in the attribution layer
  cosine       mean pairwise 1 - cosine similarity of those activations
  f            mean target value on the icons

and the ratio of each to the first method's. Atlas pictures go to ``--out`` (``atlas_<method>.png``).
``--limit N`` uses the first N images (a subset, for a slow machine); ``--cache FILE.npz`` keeps the
attribution vectors between runs::

    python benchmarks/bench_atlas_icons.py --out /tmp/icons --cache /tmp/icons/vectors.npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene.inhibition.atlas import (  # noqa: E402
    attribution_vectors,
    bin_layout,
    normalize_layout,
    render_icons,
    select_images,
    umap_layout,
)
from phosphene.inhibition.atlas_defaults import auto_grid, auto_min_points  # noqa: E402
from phosphene.inhibition.atlas_icons import (  # noqa: E402
    cell_directions,
    cell_f,
    compose_atlas,
    icon_diversity,
)
from phosphene.mining.source import load_source  # noqa: E402
from phosphene.units import parse_unit  # noqa: E402


def vectors_of(model, args) -> tuple[np.ndarray, np.ndarray]:
    """(f, attribution vectors) of the folder's images, from ``--cache`` when it exists."""
    if args.cache and Path(args.cache).exists():
        data = np.load(args.cache)
        return data["f"], data["vectors"]
    source = load_source(args.images, model, None)
    images = source.images[:args.limit] if args.limit else source.images
    started = time.perf_counter()
    f, vectors = attribution_vectors(model, images, parse_unit(args.target), args.attr_layer, progress=False)
    print(f"attribution of {len(images)} images: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.cache:
        Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache, f=f, vectors=vectors)
    return f, vectors


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default="../shared/data/imagenet-samples")
    ap.add_argument("--target", default="_blocks.8._relu1:337")
    ap.add_argument("--attr-layer", default="_blocks.7")
    ap.add_argument("--methods", default="mean,centred,whitened")
    ap.add_argument("--limit", type=int, default=None, help="use the first N images only")
    ap.add_argument("--icon-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--cossim-pow", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=None, help=".npz file for the attribution vectors")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = phosphene.load_model("efficientnet_lite0")
    f_all, vectors_all = vectors_of(model, args)
    keep = select_images(f_all, np.linalg.norm(vectors_all, axis=1), 100)
    vectors, f = vectors_all[keep], f_all[keep]
    grid, min_points = auto_grid(len(vectors)), auto_min_points(len(vectors))
    cells = bin_layout(normalize_layout(umap_layout(vectors, 10, 0.1, 0)), grid, min_points)
    members = [c.members for c in cells]
    print(f"{len(f_all)} images, {len(keep)} laid out, {grid}x{grid} grid: {len(cells)} icons, "
          f"{args.steps} steps at {args.icon_size} px")
    rows = {}
    for method in args.methods.split(","):
        directions = cell_directions(vectors, members, method)
        started = time.perf_counter()
        icons = render_icons(model, args.attr_layer, directions, args.icon_size, args.steps,
                             cossim_pow=args.cossim_pow, progress=False)
        seconds = time.perf_counter() - started
        diversity = icon_diversity(model, icons, args.attr_layer)
        icon_f = phosphene.attribution.attribute(model, icons, parse_unit(args.target), ["input"]).f
        rows[method] = {**diversity, "f": float(icon_f.mean()), "seconds": round(seconds, 1),
                        "load": " ".join(f"{v:.1f}" for v in os.getloadavg())}
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            compose_atlas(icons, cells, grid, cell_f(f, members)).save(args.out / f"atlas_{method}.png")
    first = next(iter(rows.values()))
    print(f"{'method':10}{'pixels':>10}{'activation':>12}{'cosine':>10}{'f':>9}   ratios (pixels, act., cos)"
          "   seconds, load")
    for method, r in rows.items():
        ratios = ", ".join(f"{r[k] / max(first[k], 1e-12):.2f}" for k in ("pixels", "activation",
                                                                          "activation_cosine"))
        print(f"{method:10}{r['pixels']:10.4f}{r['activation']:12.3f}{r['activation_cosine']:10.4f}"
              f"{r['f']:9.3f}   {ratios}   {r['seconds']} s, load {r['load']}")
    return rows


if __name__ == "__main__":
    main()
