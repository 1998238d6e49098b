"""What the recording pass costs (issue 28): two passes of two images, against two bare forwards.

    PYTHONPATH=$PWD python benchmarks/bench_recording.py [--size 224] [--rounds 3]

The recording pass (`phosphene.layers.recording.recorded_pass`) runs once per model and input size,
before the first tapped call: two forward passes of a batch of two ([a, b] then [a, c]) with a hook
on every module, which checks which layers hold one row per image, fingerprints image a's rows and
infers the partitions of folded layers. The baseline is the same two batch-of-two forwards without
hooks, timed in the same rounds (order alternating); the ratio is the median of per-round ratios.
Models: the embedded Lite0 and, with timm installed, random-weight ViT-S/16, Swin-T and MobileViT-S.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import phosphene  # noqa: E402
from phosphene.layers.recording import recorded_pass  # noqa: E402


def models() -> dict[str, phosphene.ImageModel]:
    found = {"lite0": phosphene.load_model("efficientnet_lite0", device="cpu")}
    try:
        import timm
    except ImportError:
        return found
    for name in ("vit_small_patch16_224", "swin_tiny_patch4_window7_224", "mobilevit_s"):
        torch.manual_seed(0)
        found[name] = phosphene.load_model(timm.create_model(name, pretrained=False).eval(), device="cpu")
    return found


def bare(model, pairs) -> float:
    started = time.perf_counter()
    with torch.no_grad():
        for pair in pairs:
            model(pair)
    return time.perf_counter() - started


def recording(model, image) -> float:
    started = time.perf_counter()
    recorded_pass(model, image, cache=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {torch.get_num_threads()} threads, {args.size} px")
    for name, model in models().items():
        image = torch.rand(1, 3, args.size, args.size)
        pairs = [torch.rand(2, 3, args.size, args.size) for _ in range(2)]
        bare(model, pairs)  # warm-up
        ratios, seconds = [], []
        for round_ in range(args.rounds):
            if round_ % 2:
                base, rec = bare(model, pairs), recording(model, image)
            else:
                rec, base = recording(model, image), bare(model, pairs)
            ratios.append(rec / base)
            seconds.append(rec)
        record = recorded_pass(model, image, cache=False)
        print(f"{name:30} recording {statistics.median(seconds):6.2f} s = x{statistics.median(ratios):.2f} "
              f"the two bare forwards; {len(record.batch.partitions)} layers partitioned, "
              f"{len(record.refused)} refused")


if __name__ == "__main__":
    main()
