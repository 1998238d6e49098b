"""lucid's transparent neuron visualizations: an RGBA image (`param.AlphaImage`) composited over a new
random background every step, with an alpha penalty (RMS opacity, `alpha_penalty`) subtracted, so
that only what the neuron needs stays opaque. Rows: without the penalty, with it, its opacity map;
the images are shown over a checkerboard. Captions: the neuron's value (over grey) and the mean
opacity.

    python scripts/figures/alpha.py --out out/figures/alpha [--size 64 --steps 256]

One unit with the CLI: ``phosphene render --layer _blocks.8 --channels 3 --objective neuron --alpha 2``
(writes *_rgba.png). Writes alpha.png and alpha.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import phosphene
from phosphene import objectives as obj
from phosphene.io.images import image_grid, save_image
from phosphene.param import AlphaImage
from phosphene.regularizers import alpha_penalty


def checkerboard(size: int, cell: int = 8) -> torch.Tensor:
    """(3, size, size) light/dark grey checkerboard, the usual picture of transparency."""
    index = torch.arange(size) // max(1, cell)
    board = ((index[:, None] + index[None, :]) % 2).float()
    return (0.6 + 0.25 * board).expand(3, -1, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--channels", default="3,7,11")
    parser.add_argument("--weight", type=float, default=60.0, help="the alpha penalty's weight")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    channels = [int(c) for c in args.channels.split(",")]
    started = time.perf_counter()
    board = checkerboard(args.size, max(2, args.size // 8))
    rows, captions, record = [], [], {"settings": vars(args), "runs": {}}
    for weight in (0.0, args.weight):
        image = AlphaImage(len(channels), args.size, generator=torch.Generator().manual_seed(0))
        neuron = obj.neuron(args.layer, channels)
        result = phosphene.render(model, neuron - weight * alpha_penalty(image), param=image,
                                  steps=args.steps, size=args.size, progress=False)
        rgb, alpha = result.rgba[:, :3], result.rgba[:, 3:]
        value = result.final + weight * alpha.pow(2).flatten(1).mean(1).sqrt()  # the neuron alone
        rows.append(rgb * alpha + board * (1 - alpha))
        captions += [f"{v:.1f} a{a:.2f}" for v, a in zip(value.tolist(), alpha.flatten(1).mean(1).tolist())]
        record["runs"][f"weight {weight:g}"] = {"neuron": value.tolist(),
                                               "mean_alpha": alpha.flatten(1).mean(1).tolist(),
                                               "seconds": round(result.seconds, 1)}
        print(f"weight {weight:<4g} neuron {value.mean():7.3f}   mean alpha {alpha.mean():.3f}   "
              f"{result.seconds:.1f}s", flush=True)
    rows.append(alpha.expand(-1, 3, -1, -1))
    captions += ["opacity"] * len(channels)
    record["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(torch.cat(rows), captions, columns=len(channels),
                      note=f"{args.layer} neurons {args.channels}; rows: RGBA without the alpha penalty, "
                           f"with {args.weight:g} x RMS opacity, its opacity (over a checkerboard; neuron "
                           "value, mean opacity a)")
    save_image(grid, out / "alpha.png")
    (out / "alpha.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/alpha.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
