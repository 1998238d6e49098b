"""The accentuation paper's Fig. 3: one image accentuated toward one class with the regularization
weight lambda swept (top row, one batch) and with the regularization layer swept from the input to
deep layers at lambda = 1 (bottom row). Captions: f after (the class logit) and R (distance to the seed
at the row's reg layer).

    python scripts/figures/accent_sweeps.py --out out/figures/accent_sweeps [--size 96 --steps 48]

The same with the CLI: ``phosphene accentuate IMAGE --class 1 --lam-sweep 0,0.5,1,2,4`` and
``phosphene accentuate IMAGE --class 1 --reg-layer input,_blocks.2,_blocks.4,_blocks.8,_blocks.12``.
Writes accent_sweeps.png and accent_sweeps.json.
"""

from __future__ import annotations

import time

import torch
from _common import load_seeds, parser, write

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate
from phosphene.io.images import image_grid


def main() -> None:
    options = parser(__doc__, size=96, steps=48)
    options.add_argument("--image", default="n01440764_tench.JPEG")
    options.add_argument("--class", dest="class_index", type=int, default=1, help="default: goldfish")
    options.add_argument("--lams", default="0,0.5,1,2,4")
    options.add_argument("--reg-layers", default="input,_blocks.2,_blocks.4,_blocks.8,_blocks.12")
    options.add_argument("--lam-reg-layer", default="_blocks.8", help="the reg layer of the lambda sweep")
    options.add_argument("--crops", type=int, default=4)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    seed = load_seeds(args, [args.image])
    objective = obj.class_logit(args.class_index)
    common = {"steps": args.steps, "crops": args.crops, "input_size": args.size, "progress": False}
    started = time.perf_counter()
    lams = [float(v) for v in args.lams.split(",")]
    by_lam = accentuate(model, objective, seed, args.lam_reg_layer, lam=lams, **common)
    record = {"lambda_sweep": [], "reg_layer_sweep": []}
    pictures, captions = [seed[0]], [f"seed f={by_lam.f_before[0]:.1f}"]
    for row, lam in enumerate(lams):
        pictures.append(by_lam.images[row])
        captions.append(f"l{lam:g} f{by_lam.f_after[row]:.0f} R{by_lam.r_after[row]:.0f}")
        record["lambda_sweep"].append({"lam": lam, "f_after": float(by_lam.f_after[row]),
                                       "r_after": float(by_lam.r_after[row])})
    layers = args.reg_layers.split(",")
    pictures.append(seed[0])
    captions.append("seed (reg layer)")
    for layer in layers:
        result = accentuate(model, objective, seed, layer, lam=1.0, **common)
        pictures.append(result.images[0])
        captions.append(f"{layer.lstrip('_')} f={result.f_after[0]:.1f}")
        record["reg_layer_sweep"].append({"reg_layer": layer, "f_after": float(result.f_after[0]),
                                          "r_after": float(result.r_after[0])})
    for entry in record["lambda_sweep"] + record["reg_layer_sweep"]:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in entry.items()})
    columns = max(len(lams), len(layers)) + 1
    grid = image_grid(torch.stack(pictures), captions, columns=columns,
                      note=f"class {args.class_index}; top: lambda sweep (reg. layer {args.lam_reg_layer}), "
                           "bottom: reg. layer sweep at lambda 1 (f: class logit, R: distance to the seed)")
    write(args, "accent_sweeps", grid, record, started)


if __name__ == "__main__":
    main()
