"""The accentuation paper's Fig. 4: the crop side range sets the scale of what an accentuation adds --
small crops (a few percent of the image) add small, repeated detail, large crops change the whole
object. One image, one class, lambda 1, one accentuation per range. Captions: the range and f after.

    python scripts/figures/accent_crops.py --out out/figures/accent_crops [--size 96 --steps 48]

One range with the CLI: ``phosphene accentuate IMAGE --class 1 --crop-range 0.05,0.25``.
Writes accent_crops.png and accent_crops.json.
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
    options.add_argument("--ranges", default="0.05-0.25,0.25-0.5,0.5-0.99,0.05-0.99")
    options.add_argument("--reg-layer", default="_blocks.8")
    options.add_argument("--crops", type=int, default=4)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    seed = load_seeds(args, [args.image])
    objective = obj.class_logit(args.class_index)
    started = time.perf_counter()
    pictures, captions, record = [seed[0]], [], {"ranges": []}
    for text in args.ranges.split(","):
        low, high = (float(v) for v in text.split("-"))
        result = accentuate(model, objective, seed, args.reg_layer, crop_side=(low, high), steps=args.steps,
                            crops=args.crops, input_size=args.size, progress=False)
        if not captions:
            captions.append(f"seed f={result.f_before[0]:.1f}")
        pictures.append(result.images[0])
        captions.append(f"{low:g}-{high:g} f={result.f_after[0]:.1f}")
        record["ranges"].append({"crop_side": [low, high], "f_after": float(result.f_after[0]),
                                 "r_after": float(result.r_after[0])})
        print(record["ranges"][-1])
    grid = image_grid(torch.stack(pictures), captions, columns=len(pictures),
                      note=f"class {args.class_index}, lambda 1; crop side range (fraction of the image) "
                           "and f after")
    write(args, "accent_crops", grid, record, started)


if __name__ == "__main__":
    main()
