"""The accentuation paper's Fig. 5: each image's most inhibited classes (its smallest logits)
accentuated, without and with the attribution mask (``--mask attribution``: changes confined to where
the class is attributed in the seed). Rows: seed | accentuation without the mask | with the mask, per
(image, class). Captions: class, f after.

    python scripts/figures/accent_inhibited.py --out out/figures/accent_inhibited [--size 96 --steps 48]

The same with the CLI: ``phosphene accentuate IMAGES --most-inhibited 2 [--mask attribution]``.
Writes accent_inhibited.png and accent_inhibited.json.
"""

from __future__ import annotations

import time

import torch
from _common import load_seeds, parser, write

import phosphene
from phosphene.accentuation import accentuate
from phosphene.cli.accentuate_classes import ClassChoices, expand_rows, seed_classes
from phosphene.io.images import image_grid


def main() -> None:
    options = parser(__doc__, size=96, steps=48)
    options.add_argument("--images", default="n01514859_hen.JPEG,n04147183_schooner.JPEG")
    options.add_argument("--most-inhibited", type=int, default=2)
    options.add_argument("--reg-layer", default="_blocks.8")
    options.add_argument("--crops", type=int, default=4)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    names = args.images.split(",")
    seeds = load_seeds(args, names)
    started = time.perf_counter()
    classes = seed_classes(model, seeds, None, ClassChoices(bottom=args.most_inhibited))
    batch, rows, objective = expand_rows(seeds, [n.split(".")[0] for n in names], classes)
    common = {"steps": args.steps, "crops": args.crops, "input_size": args.size, "progress": False}
    free = accentuate(model, objective, batch, args.reg_layer, **common)
    masked = accentuate(model, objective, batch, args.reg_layer, mask="attribution", **common)
    pictures, captions, record = [], [], {"rows": []}
    for row, name in enumerate(rows):
        label = objective.label(row).replace("class ", "c")
        pictures += [batch[row], free.images[row], masked.images[row]]
        captions += [f"{label} f={free.f_before[row]:.1f}", f"free f={free.f_after[row]:.1f}",
                     f"masked f={masked.f_after[row]:.1f}"]
        record["rows"].append({"row": name, "f_before": float(free.f_before[row]),
                               "f_free": float(free.f_after[row]), "f_masked": float(masked.f_after[row]),
                               "r_free": float(free.r_after[row]), "r_masked": float(masked.r_after[row]),
                               "changed_free": float((free.images[row] - batch[row]).abs().mean()),
                               "changed_masked": float((masked.images[row] - batch[row]).abs().mean())})
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in record["rows"][-1].items()})
    grid = image_grid(torch.stack(pictures), captions, columns=6,
                      note="most inhibited classes: seed (class, logit) | accentuation | with the "
                           "attribution mask (f after)")
    write(args, "accent_inhibited", grid, record, started)


if __name__ == "__main__":
    main()
