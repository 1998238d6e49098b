"""The inhibition paper's attribution atlas: images laid out by their attribution vector to a unit
through an earlier layer (UMAP), one icon per occupied cell rendered toward what is specific to that
cell, framed in the colour of the unit's mean value on the cell's images (`build_atlas`, the
``phosphene atlas`` verb).

    python scripts/figures/inhibition_atlas.py --out out/figures/inhibition_atlas [--size 96 --steps 48]

The same: ``phosphene atlas --images DIR --target _blocks.8._relu1:337 --attr-layer _blocks.7
--icon-size 48 --steps 48 --out OUT`` (which also writes the hover page). Writes inhibition_atlas.png
(`AtlasResult.image`) and inhibition_atlas.json.
"""

from __future__ import annotations

import time

import torch
from _common import parser, samples_dir, write

import phosphene
from phosphene.inhibition.atlas import build_atlas
from phosphene.io.images import list_images


def main() -> None:
    options = parser(__doc__, size=96, steps=48)
    options.add_argument("--target", default="_blocks.8._relu1:337")
    options.add_argument("--attr-layer", default="_blocks.7")
    options.add_argument("--images", type=int, default=200, help="the first N sample images")
    options.add_argument("--icon-size", type=int, default=48)
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    folder = samples_dir() if args.samples is None else args.samples
    paths = list_images(folder)[:args.images]
    if not paths:
        raise SystemExit(f"no sample images in {folder} (--samples or PHOSPHENE_SHARED)")
    started = time.perf_counter()
    images = torch.stack([phosphene.load_image(p, args.size) for p in paths])
    atlas = build_atlas(model, images, paths, args.attr_layer, args.target, steps=args.steps,
                        icon_size=min(args.icon_size, args.size), per_group=min(100, args.images // 3),
                        progress=False)
    record = {"grid": atlas.grid, "laid_out": len(atlas.f), "icons": len(atlas.icons),
              "cell_f": [float(v) for v in atlas.cell_f], "icon_f": [float(v) for v in atlas.icon_f]}
    print({k: v for k, v in record.items() if not isinstance(v, list)})
    write(args, "inhibition_atlas", atlas.image(), record, started)


if __name__ == "__main__":
    main()
