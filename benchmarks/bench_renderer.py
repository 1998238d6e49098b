"""Renderer refactor check (issue 9): the render() of a reference commit vs this checkout's, one process.

    .venv/bin/python benchmarks/bench_renderer.py --ref 4c50938 --rounds 4

The reference ``phosphene/render.py`` is read with ``git show REF:phosphene/render.py`` and run against
this checkout's other modules. Each round renders the same objective with both (old first, then new);
the script checks that images and final objective values are identical and prints the per-round wall
time ratio new/old and its median (the machine may be shared: compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import phosphene  # noqa: E402
from phosphene import objectives as obj  # noqa: E402


def reference_render(ref: str) -> types.ModuleType:
    """The ``render`` module of commit ``ref``, importing this checkout's other modules."""
    source = subprocess.run(["git", "show", f"{ref}:phosphene/render.py"], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout
    module = types.ModuleType("phosphene._reference_render")
    module.__package__ = "phosphene"
    sys.modules[module.__name__] = module
    exec(compile(source, f"{ref}:phosphene/render.py", "exec"), module.__dict__)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="4c50938", help="commit whose render.py is the reference")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--layer", default="_blocks.8")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    old = reference_render(args.ref)
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    settings = dict(steps=args.steps, size=args.size, seed=0, progress=False)

    def objective() -> obj.Objective:
        return obj.channel(args.layer, range(args.channels))

    old.render(model, objective(), **settings)
    phosphene.render(model, objective(), **settings)  # warm-up
    ratios = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        a = old.render(model, objective(), **settings)
        t1 = time.perf_counter()
        b = phosphene.render(model, objective(), **settings)
        t2 = time.perf_counter()
        same = torch.equal(a.images, b.images) and torch.equal(a.final, b.final)
        ratios.append((t2 - t1) / (t1 - t0))
        print(f"round {r}: old {t1 - t0:.2f}s new {t2 - t1:.2f}s new/old {ratios[-1]:.3f} identical {same}",
              flush=True)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.layer} x{args.channels}, "
          f"{args.steps} steps, {args.size} px: new/old median {statistics.median(ratios):.3f}")
    print("final objective:", [round(v, 3) for v in b.final.tolist()])


if __name__ == "__main__":
    main()
