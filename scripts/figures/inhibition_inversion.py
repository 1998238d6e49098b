"""The inhibition paper's Fig. 5: for a seed image, the + and - attribution accentuations (the seed
changed to match its excitatory or its inhibitory attribution through an earlier layer), the + and -
inversions (the same from noise) and the unit's visualization, f under each (`invert_many`, the
``phosphene invert`` verb; one batch for all seeds).

    python scripts/figures/inhibition_inversion.py --out out/figures/inhibition_inversion \
        [--size 96 --steps 64]

One seed with the CLI: ``phosphene invert --image IMAGE --target _blocks.9:5 --attr-layer _blocks.6``.
Writes inhibition_inversion.png (a row per seed, `InversionResult.figure`) and inhibition_inversion.json.
"""

from __future__ import annotations

import time

from _common import load_seeds, parser, write
from PIL import Image

import phosphene
from phosphene.inhibition.inversion import PANELS, invert_many


def main() -> None:
    options = parser(__doc__, size=96, steps=64)
    options.add_argument("--images", default="n01440764_tench.JPEG,n01514859_hen.JPEG")
    options.add_argument("--target", default="_blocks.9:5")
    options.add_argument("--attr-layer", default="_blocks.6")
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    seeds = load_seeds(args, args.images.split(","))
    started = time.perf_counter()
    results = invert_many(model, seeds, args.target, args.attr_layer, steps=args.steps, progress=False)
    figures = [r.figure() for r in results]
    canvas = Image.new("RGB", (figures[0].size[0], sum(f.size[1] for f in figures)), "white")
    record = {"seeds": []}
    for k, (name, result, figure) in enumerate(zip(args.images.split(","), results, figures)):
        canvas.paste(figure, (0, k * figures[0].size[1]))
        record["seeds"].append({"image": name, "f_seed": result.attribution.f,
                                **{p: float(v) for p, v in zip(PANELS, result.f)}})
        print(record["seeds"][-1])
    write(args, "inhibition_inversion", canvas, record, started)


if __name__ == "__main__":
    main()
