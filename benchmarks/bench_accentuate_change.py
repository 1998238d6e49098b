"""How much an accentuation changes the image at λ = 1 vs λ = 0 (the figures in docs/accentuation.md).

The tench sample accentuated toward class 1 'goldfish' (R at `_blocks.8`) with phosphene's defaults;
prints f before/after and |x - x0| in 8-bit levels (mean, 99th percentile, share of pixel values
that change by more than 4 levels) per λ::

    PYTHONPATH=$PWD python benchmarks/bench_accentuate_change.py --size 224 --steps 100 --crops 4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phosphene  # noqa: E402
from phosphene import objectives  # noqa: E402

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-samples" / "n01440764_tench.JPEG"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--lams", default="0,1")
    ap.add_argument("--style", default="faccent")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = phosphene.load_model("efficientnet_lite0")
    seed = phosphene.load_image(SEED, args.size)[None]
    lams = [float(v) for v in args.lams.split(",")]
    res = phosphene.accentuate(model, objectives.class_logit(1), seed, "_blocks.8", lam=lams,
                               steps=args.steps, crops=args.crops, progress=False, style=args.style)
    rows = []
    for i, lam in enumerate(lams):
        levels = (res.images[i] - seed[0]).abs().flatten() * 255
        rows.append({"lam": lam, "f_before": round(float(res.f_before[i]), 2),
                     "f_after": round(float(res.f_after[i]), 2), "R": round(float(res.r_after[i]), 2),
                     "beta": round(float(res.beta[0]), 3), "mean_levels": round(float(levels.mean()), 2),
                     "p99_levels": round(float(torch.quantile(levels, 0.99)), 1),
                     "share_over_4_levels": round(float((levels > 4).float().mean()), 3)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"{res.seconds:.0f} s")
    return rows


if __name__ == "__main__":
    main()
