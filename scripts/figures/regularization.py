"""Distill's regularization figure ("The Enemy of Feature Visualization"): the same channels rendered
with no regularization, frequency penalization (total variation; blurring every N steps),
transformation robustness, and preconditioning (Fourier), with each image's high-frequency energy
share (spectrum power above half Nyquist) and objective.

    python scripts/figures/regularization.py --out out/figures/regularization [--size 64 --steps 64]

Writes regularization.png (rows: conditions, columns: channels; captions: objective and HF share) and
regularization.json (per condition: mean objective, mean HF share, their ratios to "none").
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


def conditions(tv: float, blur_every: int, blur_sigma: float) -> dict[str, dict]:
    """Condition name -> (penalty weight, render keywords)."""
    pixel = {"param": "pixel", "transforms": "none"}
    return {
        "none": {"tv": 0.0, **pixel},
        f"total variation ({tv:g})": {"tv": tv, **pixel},
        f"blur every {blur_every} (sigma {blur_sigma:g})": {"tv": 0.0, **pixel, "blur_every": blur_every,
                                                              "blur_sigma": blur_sigma},
        "transformation robustness": {"tv": 0.0, "param": "pixel", "transforms": "standard"},
        "preconditioning (fourier)": {"tv": 0.0, "param": "fourier", "transforms": "standard"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--units", default="_blocks.8:3,_blocks.8:7,_blocks.10:5")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--tv", type=float, default=300.0)
    parser.add_argument("--blur-every", type=int, default=4)
    parser.add_argument("--blur-sigma", type=float, default=0.75)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    units = [phosphene.unit(u) for u in args.units.split(",")]
    unit_objective = obj.stack(units)
    rows, captions, record = [], [], {"settings": vars(args), "conditions": {}}
    started = time.perf_counter()
    for name, setting in conditions(args.tv, args.blur_every, args.blur_sigma).items():
        setting = dict(setting)
        weight = setting.pop("tv")
        objective = unit_objective - weight * reg.total_variation() if weight else unit_objective
        result = phosphene.render(model, objective, steps=args.steps, size=args.size, lr=args.lr,
                                  progress=False, **setting)
        with phosphene.LayerTap(model, unit_objective.layers) as tap, torch.no_grad():
            values = obj.evaluate(unit_objective, obj.Acts(tap(result.images))).tolist()
        shares = reg.high_frequency_share(result.images).tolist()
        rows.append(result.images)
        captions += [f"{v:.0f} hf{s:.2f}" for v, s in zip(values, shares)]
        record["conditions"][name] = {"objective": values, "hf_share": shares,
                                      "mean_objective": sum(values) / len(values),
                                      "mean_hf_share": sum(shares) / len(shares),
                                      "seconds": round(result.seconds, 1)}
        entry = record["conditions"][name]
        print(f"{name:<36} objective {entry['mean_objective']:8.3f}   HF share {entry['mean_hf_share']:.4f}"
              f"   {result.seconds:.1f}s", flush=True)
    base = record["conditions"]["none"]
    for entry in record["conditions"].values():
        entry["objective_ratio"] = entry["mean_objective"] / base["mean_objective"]
        entry["hf_share_ratio"] = entry["mean_hf_share"] / base["mean_hf_share"]
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat(rows), captions, columns=len(units),
                      note="rows: " + " / ".join(record["conditions"]))
    save_image(grid, out / "regularization.png")
    (out / "regularization.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/regularization.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
