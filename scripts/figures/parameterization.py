"""Distill's parameterization comparison ("Feature Visualization", preconditioning): the same channels
rendered from a pixel image, a decorrelated Fourier image (lucid's) and MaCo (magnitude fixed to a
natural-image spectrum, phase optimized), all with the standard transforms. Captions: the objective
on the clean image and the image's high-frequency share (`regularizers.high_frequency_share`).

    python scripts/figures/parameterization.py --out out/figures/parameterization [--size 64 --steps 128]

One row with the CLI: ``phosphene render --layer _blocks.8 --channels 3,7 --param maco ...``.
Writes parameterization.png (rows: parameterizations, columns: channels) and parameterization.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import phosphene
from phosphene import objectives as obj
from phosphene import regularizers as reg
from phosphene.io.images import image_grid, save_image

PARAMS = ("pixel", "fourier", "maco")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--units", default="_blocks.8:3,_blocks.8:7,_blocks.10:5")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    objective = obj.stack([phosphene.unit(u) for u in args.units.split(",")])
    started = time.perf_counter()
    images, captions, record = [], [], {"settings": vars(args), "parameterizations": {}}
    for param in PARAMS:
        result = phosphene.render(model, objective, steps=args.steps, size=args.size, param=param,
                                  progress=False)
        share = reg.high_frequency_share(result.images)
        images.append(result.images)
        captions += [f"{v:.0f} hf{h:.2f}" for v, h in zip(result.final.tolist(), share.tolist())]
        record["parameterizations"][param] = {"objective": result.final.tolist(), "hf_share": share.tolist(),
                                              "mean_objective": float(result.final.mean()),
                                              "mean_hf_share": float(share.mean()),
                                              "seconds": round(result.seconds, 1)}
        print(f"{param:<8} objective {result.final.mean():8.3f}   HF share {share.mean():.3f}   "
              f"{result.seconds:.1f}s", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat(images), captions, columns=len(args.units.split(",")),
                      note=f"rows: {', '.join(PARAMS)}; columns: {args.units}; objective, "
                           "high-frequency share (hf)")
    save_image(grid, out / "parameterization.png")
    (out / "parameterization.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/parameterization.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
