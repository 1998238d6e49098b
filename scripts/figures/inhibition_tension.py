"""The inhibition paper's Figs. 3 and 4: completeness across layers (how well E+ - E- through each
earlier layer predicts the unit, Pearson r) and the E+ vs E- scatter of every image, coloured by f,
with MEIs, MIIs and MTIs marked -- made by `tension_report` (the ``phosphene tension`` verb).

    python scripts/figures/inhibition_tension.py --out out/figures/inhibition_tension [--size 96]

The same: ``phosphene tension --images DIR --target _blocks.8._relu1:337 --attr-layer _blocks.7
--attr-layer _blocks.5 --attr-layer _blocks.3 --attr-layer input --out OUT``. Writes
inhibition_tension.png (completeness above the scatter), the report's files in OUT/report/ and
inhibition_tension.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import parser, sample_subset, write
from PIL import Image

import phosphene
from phosphene.inhibition.tension import tension_report


def stack(top: Image.Image, bottom: Image.Image, width: int = 900) -> Image.Image:
    """Two pictures one above the other, each scaled to ``width``."""
    top, bottom = (im.convert("RGB").resize((width, round(im.size[1] * width / im.size[0])))
                   for im in (top, bottom))
    canvas = Image.new("RGB", (width, top.size[1] + bottom.size[1]), "white")
    canvas.paste(top, (0, 0))
    canvas.paste(bottom, (0, top.size[1]))
    return canvas


def main() -> None:
    options = parser(__doc__, size=96, steps=None)
    options.add_argument("--target", default="_blocks.8._relu1:337")
    options.add_argument("--attr-layers", default="_blocks.7,_blocks.5,_blocks.3,input")
    options.add_argument("--images", type=int, default=200, help="the first N sample images")
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    started = time.perf_counter()
    out = Path(args.out)
    folder = sample_subset(args, args.images, out / "images")
    report = tension_report(model, folder, args.target, args.attr_layers.split(","), out / "report", n=4,
                            size=args.size, num_workers=0, progress=False)
    rows = [r for r in report.table.completeness() if r["variant"] == "l1"]
    for row in rows:
        print(f"{row['layer']:<12} r {row['pearson']:.3f} (Spearman {row['spearman']:.3f})  "
              f"scale {row['scale']:.2f}")
    picture = stack(*(Image.open(out / "report" / name) for name in ("completeness.png", "scatter.png")))
    write(args, "inhibition_tension", picture, {"completeness": report.table.completeness()}, started)


if __name__ == "__main__":
    main()
