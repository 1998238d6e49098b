"""The inhibition paper's Fig. 2: most excitatory and most inhibitory images (MEIs, MIIs) of units at
three depths, each with its phi+/phi- attribution map through the block before it (red: excitation,
blue: inhibition, magenta: both; `tension_plots.overlay`).

    python scripts/figures/inhibition_layers.py --out out/figures/inhibition_layers [--size 96]

Per unit the same as ``phosphene tension --images DIR --target UNIT --attr-layer LAYER`` (its mei.png
and mii.png). Writes inhibition_layers.png (a row per unit: 4 MEIs | 4 MIIs) and inhibition_layers.json.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from _common import parser, sample_subset, write

import phosphene
from phosphene.attribution import Attributor
from phosphene.inhibition.tension import compute_tension, load_selected
from phosphene.inhibition.tension_plots import overlay, smooth_maps
from phosphene.io.images import image_grid

UNITS = "_blocks.4._relu1:10@_blocks.3,_blocks.8._relu1:337@_blocks.7,_blocks.12._relu1:766@_blocks.11"


def main() -> None:
    options = parser(__doc__, size=96, steps=None)
    options.add_argument("--units", default=UNITS, help="UNIT@ATTR_LAYER, comma-separated")
    options.add_argument("--images", type=int, default=200, help="the first N sample images")
    options.add_argument("--n", type=int, default=4, help="MEIs and MIIs per unit")
    args = options.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    started = time.perf_counter()
    folder = sample_subset(args, args.images, Path(args.out) / "images")
    pictures, captions, record = [], [], {"units": []}
    for entry in args.units.split(","):
        unit, layer = entry.split("@")
        table = compute_tension(model, folder, unit, [layer], size=args.size, num_workers=0, progress=False)
        chosen = [*table.select("mei", args.n), *table.select("mii", args.n)]
        images = load_selected([table.root / table.paths[i] for i in chosen], table.preprocessing)
        with Attributor(model, unit, [layer]) as attributor:
            maps = attributor(images, maps=True).layers[layer]
        plus, minus = smooth_maps(maps.phi_plus, maps.phi_minus, images.shape[-1])
        for k, i in enumerate(chosen):
            pictures.append(torch.from_numpy(overlay(images[k], plus[k], minus[k])).permute(2, 0, 1).float())
            captions.append(f"{'MEI' if k < args.n else 'MII'} f={table.f[i]:.2f}")
        record["units"].append({"unit": unit, "attr_layer": layer, "images": len(table.f),
                                "mei_f": [float(table.f[i]) for i in chosen[:args.n]],
                                "mii_f": [float(table.f[i]) for i in chosen[args.n:]],
                                "positive_share": float((table.f > 0).mean())})
        print(record["units"][-1])
    grid = image_grid(torch.stack(pictures), captions, columns=2 * args.n,
                      note="rows: " + "; ".join(u.replace("@", " via ") for u in args.units.split(","))
                           + f" ({args.images} sample images). Left: MEIs, right: MIIs; red: phi+ "
                           "(excitation), blue: phi- (inhibition), magenta: both")
    write(args, "inhibition_layers", grid, record, started)


if __name__ == "__main__":
    main()
