"""Fixed-seed render / accentuate / invert results, to check that a refactor changes nothing.

    python benchmarks/bench_refactor_equal.py --out /tmp/before.pt        # on the old commit
    python benchmarks/bench_refactor_equal.py --out /tmp/after.pt --compare /tmp/before.pt

``--compare`` prints, per call, whether every tensor is ``torch.equal`` to the earlier file and exits 1
if any differs. One thread, 64 px, a few steps: about 10 s on the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

import phosphene
from phosphene import objectives as obj
from phosphene.inhibition.inversion import invert

SHARED = Path(os.environ.get("PHOSPHENE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SEED_IMAGE = SHARED / "data" / "imagenet-samples" / "n01440764_tench.JPEG"


def results() -> dict[str, tuple[torch.Tensor, ...]]:
    """Five fixed-seed calls on the embedded EfficientNet-Lite0."""
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    out = {}
    r = phosphene.render(model, obj.channel("_blocks.8", [0, 1, 2]), steps=6, size=64, progress=False)
    out["render_channel"] = (r.history, r.final, r.images)
    r = phosphene.render(model, "_blocks.5:3@2,2", steps=5, size=64, progress=False, param="pixel")
    out["render_neuron"] = (r.history, r.final, r.images)
    r = phosphene.render(model, obj.class_logit(1), steps=4, size=64, progress=False, param="maco", copies=2)
    out["render_class"] = (r.history, r.final, r.images)
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    image = phosphene.load_image(SEED_IMAGE, 64) if SEED_IMAGE.is_file() else noise
    a = phosphene.accentuate(model, obj.class_logit(1), image, reg_layer="_blocks.4", steps=4, crops=2,
                             lam=[0, 1], progress=False)
    out["accent"] = (a.f_history, a.r_history, a.images, a.f_after)
    inv = invert(model, image, "_blocks.9:5", "_blocks.6", steps=3, progress=False)
    out["invert"] = tuple(v for v in vars(inv).values() if isinstance(v, torch.Tensor))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to save this run's tensors (torch.save)")
    parser.add_argument("--compare", help="an earlier --out file to compare with, tensor by tensor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    now = results()
    torch.save(now, args.out)
    if not args.compare:
        return 0
    before = torch.load(args.compare)
    same = {key: all(torch.equal(x, y) for x, y in zip(before[key], now[key])) for key in before}
    for key, equal in same.items():
        print(f"{key:16s} {'torch.equal' if equal else 'DIFFERS'}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
