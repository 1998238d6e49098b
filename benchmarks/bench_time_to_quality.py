"""Time to the same quality: phosphene vs lucent's batched ``render_vis`` (issue 25).

lucent renders N channels of a layer in one batch for ``--lucent-steps`` steps; its final objective
(mean over channels of each channel's mean activation on its clean final image) is the quality bar.
phosphene then renders the same channels at each step count of ``--steps``; the first count whose
objective reaches the bar gives the time to the same quality, and the ratio lucent / phosphene in
process CPU time (robust to other processes' load; run with ``--threads 1``) and in wall time.
phosphene is timed before and after lucent (mean of both), so drift in the machine's speed falls on
both sides. Run it with the peers' interpreter, which has lucent::

    OMP_NUM_THREADS=1 /work/peers-venv/bin/python benchmarks/bench_time_to_quality.py \\
        --size 160 --lucent-steps 128 --steps 32,48,64 --threads 1

Same transforms (the Distill standard set, each library's own), Adam at lr 0.05, Fourier
parameterization and evaluation code on both sides (``bench_render.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_render as br  # noqa: E402  (benchmarks/bench_render.py)
from timing import Timer  # noqa: E402

from phosphene.models import layer_root  # noqa: E402


def parse_channels(text: str) -> list[int]:
    """``"0-15"`` or ``"0,3,7"`` as a list of channel indices."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(c) for c in text.split(",")]


def phosphene_point(model, layer: str, channels: list[int], steps: int, size: int, seed: int) -> dict:
    """Process CPU, wall and mean clean objective of one phosphene render."""
    timer, result = br.run_phosphene(model, layer, channels, steps, size, seed, channels_last=True)
    values = br.clean_values(model, result.images, layer, channels)
    return {"cpu": timer.cpu, "wall": timer.wall, "objective": statistics.fmean(values)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", default="0-15")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--lucent-steps", type=int, default=128)
    ap.add_argument("--steps", default="32,48,64", help="phosphene step counts, comma separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    channels = parse_channels(args.channels)
    step_counts = [int(s) for s in args.steps.split(",")]
    br.torchvision_shim()
    model = br.fresh_model()
    print(f"torch {torch.__version__}, {args.threads} threads, {args.layer} channels {args.channels}, "
          f"{args.size} px, load {os.getloadavg()}", flush=True)

    before = {s: phosphene_point(model, args.layer, channels, s, args.size, args.seed) for s in step_counts}
    lucent_model = br.LucentNet(layer_root(br.fresh_model())).eval()
    with Timer() as t_lucent:
        _, images = br.run_lucent(lucent_model, args.layer, channels, args.lucent_steps, args.size,
                                  args.seed, batched=True)
    lucent = {"cpu": t_lucent.cpu, "wall": t_lucent.wall,
              "objective": statistics.fmean(br.clean_values(model, images, args.layer, channels))}
    after = {s: phosphene_point(model, args.layer, channels, s, args.size, args.seed) for s in step_counts}

    rows = {}
    for s in step_counts:
        a, b = before[s], after[s]
        rows[s] = {"cpu": (a["cpu"] + b["cpu"]) / 2, "wall": (a["wall"] + b["wall"]) / 2,
                   "objective": a["objective"], "objective_repeat": b["objective"]}
    print(f"lucent batched, {args.lucent_steps} steps: objective {lucent['objective']:.2f}, "
          f"{lucent['cpu']:.1f} CPU s, {lucent['wall']:.1f} s wall")
    for s, row in rows.items():
        print(f"phosphene, {s} steps: objective {row['objective']:.2f}, {row['cpu']:.1f} CPU s, "
              f"{row['wall']:.1f} s wall; lucent/phosphene CPU x{lucent['cpu'] / row['cpu']:.2f}")
    reached = [s for s in step_counts if rows[s]["objective"] >= lucent["objective"]]
    summary = {"lucent": lucent, "phosphene": rows, "load": os.getloadavg(), "args": vars(args)}
    if reached:
        s = min(reached)
        summary["same_quality"] = {"steps": s, "cpu_ratio": lucent["cpu"] / rows[s]["cpu"],
                                   "wall_ratio": lucent["wall"] / rows[s]["wall"]}
        print(f"same quality at {s} phosphene steps: x{summary['same_quality']['cpu_ratio']:.2f} CPU, "
              f"x{summary['same_quality']['wall_ratio']:.2f} wall faster than lucent")
    else:
        print("phosphene did not reach lucent's objective at these step counts")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
