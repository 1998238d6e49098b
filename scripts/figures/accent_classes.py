"""The accentuation paper's Fig. 2: one image accentuated toward several classes, each row with the
seed, its attribution heat map for that class, the accentuation (and its transparency and change) and
the class's visualization from noise (`add_figure_columns`, the CLI's ``--paper-columns``).

    python scripts/figures/accent_classes.py --out out/figures/accent_classes [--size 96 --steps 48]

The same in one command: ``phosphene accentuate IMAGE --class 0,1,309 --paper-columns ...``.
Writes accent_classes.png (`AccentuationResult.figure`) and accent_classes.json.
"""

from __future__ import annotations

import time

from _common import load_seeds, parser, write

import phosphene
from phosphene import objectives as obj
from phosphene.accentuation import accentuate, add_figure_columns


def main() -> None:
    options = parser(__doc__, size=96, steps=48)
    options.add_argument("--image", default="n01440764_tench.JPEG")
    options.add_argument("--classes", default="0,1,309", help="class indices (default: tench, goldfish, bee)")
    options.add_argument("--reg-layer", default="_blocks.8")
    options.add_argument("--crops", type=int, default=4)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    classes = [int(c) for c in args.classes.split(",")]
    seeds = load_seeds(args, [args.image]).expand(len(classes), -1, -1, -1)
    objective = obj.class_logit(classes)
    started = time.perf_counter()
    result = accentuate(model, objective, seeds, args.reg_layer, steps=args.steps, crops=args.crops,
                        input_size=args.size, progress=False)
    add_figure_columns(model, objective, result, steps=args.steps)
    record = result.record()
    for row in record["accentuations"]:
        print(f"{row['label']:<10} f {row['f_before']:8.3f} -> {row['f_after']:8.3f}   "
              f"R {row['r_after']:.3f}")
    write(args, "accent_classes", result.figure(), {"accentuations": record["accentuations"]}, started)


if __name__ == "__main__":
    main()
