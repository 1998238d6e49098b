"""Distill's diversity figure ("Feature Visualization", diversity): one channel rendered four times in
one batch, without and with the diversity term (lucid's: minus the cosine similarity of the images'
Gram matrices at the layer, `objectives.diversity`). The numbers: the mean pairwise RMS pixel distance
of the four images and their mean pairwise Gram cosine similarity (lower: more diverse).

    python scripts/figures/diversity.py --out out/figures/diversity [--size 64 --steps 128]

The same with the CLI: ``phosphene render --layer _blocks.8 --channels 3 --batch 4 --diversity 10``.
Writes diversity.png (top: without, bottom: with) and diversity.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import phosphene
from phosphene import objectives as obj
from phosphene.io.images import image_grid, save_image
from phosphene.layers.tap import LayerTap


def pairwise(model, images: torch.Tensor, layer: str) -> tuple[float, float]:
    """(mean pairwise RMS pixel distance, mean pairwise cosine similarity of the Gram matrices)."""
    n = images.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    flat = images.flatten(1)
    pixels = torch.cdist(flat, flat)[off].mean() / flat.shape[1] ** 0.5
    with LayerTap(model, [layer]) as tap, torch.no_grad():
        act = tap(images)[layer].float().flatten(2)
    gram = F.normalize(torch.bmm(act, act.transpose(1, 2)).flatten(1), dim=1)
    return float(pixels), float((gram @ gram.T)[off].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--weight", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    channel = obj.channel(args.layer, [args.channel] * args.batch)
    started = time.perf_counter()
    rows, captions, record = [], [], {"settings": vars(args), "runs": {}}
    diverse = channel + args.weight * obj.diversity(args.layer)  # diversity() is minus the similarity
    for name, objective in (("without", channel), ("with", diverse)):
        result = phosphene.render(model, objective, steps=args.steps, size=args.size, progress=False)
        with LayerTap(model, [args.layer]) as tap, torch.no_grad():
            f = tap(result.images)[args.layer][:, args.channel].float().mean((1, 2))
        pixels, gram = pairwise(model, result.images, args.layer)
        rows.append(result.images)
        captions += [f"{'div' if name == 'with' else 'plain'} {v:.1f}" for v in f.tolist()]
        record["runs"][name] = {"channel_mean": f.tolist(), "pixel_distance": pixels, "gram_cosine": gram,
                                "seconds": round(result.seconds, 1)}
        print(f"{name:<8} channel mean {f.mean():7.3f}   pixel distance {pixels:.3f}   "
              f"Gram cosine {gram:.3f}", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat(rows), captions, columns=args.batch,
                      note=f"{args.layer}:{args.channel}; top: without, bottom: with {args.weight:g} x "
                           "diversity (f: channel mean)")
    save_image(grid, out / "diversity.png")
    (out / "diversity.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/diversity.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
