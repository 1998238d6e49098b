"""Distill's random directions ("Feature Visualization", neuron interaction): random directions in a
layer's activation space (seeded N(0, I) vectors, `interaction.random_directions`) look as meaningful
as single channels. Top: channels 0-5 of the layer; bottom: six random directions; one batch each.

    python scripts/figures/directions.py --out out/figures/directions [--size 64 --steps 128]

The same with the CLI: ``phosphene render --layer _blocks.8 --random-directions 6 --seed 0``.
Writes directions.png and directions.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import phosphene
from phosphene import interaction
from phosphene import objectives as obj
from phosphene.io.images import image_grid, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    started = time.perf_counter()
    kinds = {"channel": obj.channel(args.layer, list(range(args.count))),
             "random direction": interaction.random_directions(args.layer, args.count, seed=args.seed)}
    rows, captions, record = [], [], {"settings": vars(args), "runs": {}}
    for kind, objective in kinds.items():
        result = phosphene.render(model, objective, steps=args.steps, size=args.size, seed=args.seed,
                                  progress=False)
        rows.append(result.images)
        short = "ch" if kind == "channel" else "dir"
        captions += [f"{short}{i} {v:.1f}" for i, v in enumerate(result.final.tolist())]
        record["runs"][kind] = {"objective": result.final.tolist(), "seconds": round(result.seconds, 1)}
        print(f"{kind:<17} objective {result.final.mean():8.3f}   {result.seconds:.1f}s", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat(rows), captions, columns=args.count,
                      note=f"{args.layer}; top: channels 0-{args.count - 1}, bottom: random directions "
                           f"(seed {args.seed}); objective")
    save_image(grid, out / "directions.png")
    (out / "directions.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/directions.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
