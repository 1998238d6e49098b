"""Distill's objectives figure ("Feature Visualization"): one image per kind of objective, in one batch
-- a neuron, a channel, a layer (DeepDream), a class logit and the class probability -- plus the
negative channel and a random direction of the same layer (neuron interaction).

    python scripts/figures/objectives.py --out out/figures/objectives [--size 64 --steps 128]

Writes objectives.png (captions: the objective and its value) and objectives.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import phosphene
from phosphene import interaction
from phosphene import objectives as obj
from phosphene.io.images import image_grid, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layer", default="_blocks.8")
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--class", dest="class_index", type=int, default=309)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = phosphene.load_model(args.model, device="cpu")
    layer, channel = args.layer, args.channel
    kinds = {
        "neuron": obj.neuron(layer, channel),
        "channel": obj.channel(layer, channel),
        "layer (deepdream)": obj.deepdream(layer),
        "class logit": obj.class_logit(args.class_index),
        "class probability": obj.class_prob(args.class_index),
        "negative channel": phosphene.unit(f"-{layer}:{channel}"),
        "random direction": interaction.random_directions(layer, 1, seed=args.seed),
    }
    started = time.perf_counter()
    result = phosphene.render(model, obj.stack(list(kinds.values())), steps=args.steps, size=args.size,
                              seed=args.seed, progress=False)
    values = result.final.tolist()
    short = ["neuron", "channel", "layer", "logit", "prob", "-channel", "direction"]
    captions = [f"{s} {v:.3g}" for s, v in zip(short, values)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(result.images, captions, columns=len(kinds),
                          note=f"{layer}:{channel}, class {args.class_index}"), out / "objectives.png")
    record = {"settings": vars(args), "objectives": {k: {"name": o.name, "value": v}
                                                     for (k, o), v in zip(kinds.items(), values)},
              "seconds": round(time.perf_counter() - started, 1)}
    (out / "objectives.json").write_text(json.dumps(record, indent=2))
    for kind, value in zip(kinds, values):
        print(f"{kind:<20} {value:10.4g}")
    print(f"-> {out}/objectives.png ({record['seconds']} s)")


if __name__ == "__main__":
    main()
