"""Atlas icon diversity (issue 26): how different are an attribution atlas' icons, per icon direction?

Builds the README's attribution atlas layout once (``--target`` through ``--attr-layer`` on an image
folder, the `build_atlas` defaults: selection, UMAP, grid, cells), then renders the icons of every
kept cell once per entry of ``--methods``, ``direction@decay`` (`atlas_icons.ICON_DIRECTIONS` and the
Fourier 1/f^decay of the icons; "mean@1" is the first recipe, "whitened@1" the second, "whitened@1.5"
today's default) with the same seed and settings, and prints per entry:

  pixels       mean pairwise RMS distance between icons (per pixel and colour, 0..1)
  activation   mean pairwise Euclidean distance between the icons' spatially averaged activations
               in the attribution layer
  cosine       mean pairwise 1 - cosine similarity of those activations
  objective    mean icon objective (a . v) * cos(a, v)^p in the attribution layer on the final icons
               (v the icon's direction; how far each icon drives its cell's direction)
  f            mean target value on the icons

and the ratio of each to the first entry's. ``--seed-floor`` renders the last entry again with
seed 1 and prints the RMS pixel distance between the two renders of each direction: what phase alone
gives, the floor under the pixel distance between icons. Atlas pictures go to ``--out``
(``atlas_<entry>.png``).
``--limit N`` uses the first N images (a subset, for a slow machine); ``--cache FILE.npz`` keeps the
attribution vectors between runs::

    python benchmarks/bench_atlas_icons.py --out /tmp/icons --cache /tmp/icons/vectors.npz --seed-floor
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
from phosphene.layers.tap import LayerTap  # noqa: E402
from phosphene.mining.source import load_source  # noqa: E402
from phosphene.objectives import alignment  # noqa: E402
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
    ap.add_argument("--methods", default="mean@1,whitened@1,whitened@1.5", help="direction@decay, ...")
    ap.add_argument("--seed-floor", action="store_true", help="pixel distance of the last entry's two seeds")
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
    rows, icons = {}, None
    for entry in args.methods.split(","):
        method, _, decay = entry.partition("@")
        directions = cell_directions(vectors, members, method)
        started = time.perf_counter()
        icons = render(model, args, directions, float(decay or 1), seed=0)
        seconds = time.perf_counter() - started
        diversity = icon_diversity(model, icons, args.attr_layer)
        icon_f = phosphene.attribution.attribute(model, icons, parse_unit(args.target), ["input"]).f
        rows[entry] = {**diversity, "objective": icon_objective(model, args, icons, directions),
                       "f": float(icon_f.mean()), "seconds": round(seconds, 1),
                       "load": " ".join(f"{v:.1f}" for v in os.getloadavg())}
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            compose_atlas(icons, cells, grid, cell_f(f, members)).save(args.out / f"atlas_{entry}.png")
    first = next(iter(rows.values()))
    print(f"{'entry':14}{'pixels':>8}{'activation':>12}{'cosine':>8}{'objective':>11}{'f':>8}"
          "   ratios (pixels, act., cos, obj.)   seconds, load")
    for entry, r in rows.items():
        ratios = ", ".join(f"{r[k] / max(first[k], 1e-12):.2f}" for k in ("pixels", "activation",
                                                                          "activation_cosine", "objective"))
        print(f"{entry:14}{r['pixels']:8.4f}{r['activation']:12.3f}{r['activation_cosine']:8.4f}"
              f"{r['objective']:11.1f}{r['f']:8.3f}   {ratios}   {r['seconds']} s, load {r['load']}")
    if args.seed_floor and icons is not None:
        again = render(model, args, directions, float(decay or 1), seed=1)
        floor = float(((icons - again).flatten(1).double().pow(2).mean(1).sqrt()).mean())
        rows["seed_floor"] = {"entry": entry, "pixels": floor}
        print(f"{entry}, seed 0 vs seed 1 of each direction: pixels {floor:.4f} "
              f"(between directions {rows[entry]['pixels']:.4f})")
    return rows


def render(model, args, directions: np.ndarray, decay: float, seed: int) -> torch.Tensor:
    """The icons of ``directions`` at the benchmark's settings."""
    return render_icons(model, args.attr_layer, directions, args.icon_size, args.steps,
                        cossim_pow=args.cossim_pow, seed=seed, progress=False, decay_power=decay)


def icon_objective(model, args, icons: torch.Tensor, directions: np.ndarray) -> float:
    """Mean icon objective (a . v) * cos(a, v)^p on the final icons (no transforms)."""
    objective = alignment(args.attr_layer, torch.as_tensor(directions), args.cossim_pow)
    with torch.no_grad(), LayerTap(model, [args.attr_layer]) as tap:
        return float(objective(tap(icons)).mean())


if __name__ == "__main__":
    main()
