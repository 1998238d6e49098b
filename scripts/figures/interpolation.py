"""Distill's neuron-interaction figure: interpolation between two units, unaligned (independent frames)
and aligned (shared low-resolution parameters + a neighbour-frame activation penalty), with the
neighbour distance of each strip and the end frames' objectives beside single-unit renders.

    python scripts/figures/interpolation.py --out out/figures/interpolation [--size 64 --steps 64]

Writes interpolation.png (top: unaligned, bottom: aligned) and interpolation.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import phosphene
from phosphene import interaction
from phosphene.io.images import image_grid, save_image
from phosphene.layers.tap import LayerTap


def activation_distance(model, images: torch.Tensor, layer: str) -> float:
    """Mean RMS difference of ``layer``'s activations between neighbouring images."""
    with LayerTap(model, [layer]) as tap, torch.no_grad():
        acts = tap(images)[layer].flatten(1)
    return float((acts[1:] - acts[:-1]).pow(2).mean(1).sqrt().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--a", default="_blocks.8:3")
    parser.add_argument("--b", default="_blocks.8:7")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--alignment-layer", default="_blocks.4")
    parser.add_argument("--alignment-weight", type=float, default=0.1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    options = {"steps": args.steps, "size": args.size, "progress": False}
    started = time.perf_counter()
    singles = {}
    for name in (args.a, args.b):
        single = phosphene.render(model, name, **options)
        singles[name] = single.final.item()
    record = {"settings": vars(args), "single_unit_objective": singles, "strips": {}}
    rows = []
    for aligned in (False, True):
        result = interaction.render_interpolation(
            model, args.a, args.b, args.frames, aligned=aligned, alignment_layer=args.alignment_layer,
            alignment_weight=args.alignment_weight, **options)
        rows.append(result)
        kind = "aligned" if aligned else "unaligned"
        ends = [result.final[0].item(), result.final[-1].item()]
        record["strips"][kind] = {
            "objective_per_frame": result.final.tolist(),
            "end_frames_vs_single": [e / s for e, s in zip(ends, singles.values())],
            "neighbour_pixel_distance": interaction.neighbour_distance(result.images),
            "neighbour_activation_distance": activation_distance(model, result.images, args.alignment_layer),
            "seconds": round(result.seconds, 1)}
        entry = record["strips"][kind]
        print(f"{kind:<10} pixel distance {entry['neighbour_pixel_distance']:.4f}   activation distance "
              f"({args.alignment_layer}) {entry['neighbour_activation_distance']:.4f}   end frames / single "
              f"{entry['end_frames_vs_single'][0]:.2f} {entry['end_frames_vs_single'][1]:.2f}   "
              f"{result.seconds:.1f}s", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    captions = [f"{v:.1f}" for r in rows for v in r.final.tolist()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat([r.images for r in rows]), captions, columns=args.frames,
                      note=f"{args.a} -> {args.b}; top: unaligned, bottom: aligned")
    save_image(grid, out / "interpolation.png")
    (out / "interpolation.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/interpolation.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
