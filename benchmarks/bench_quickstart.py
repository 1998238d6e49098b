"""Time the README quick start's render step by step, to estimate its time on an unloaded CPU.

    PYTHONPATH=$PWD python benchmarks/bench_quickstart.py --channels 8 --steps 64 --size 128 --timed 12

Runs ``phosphene render --layer _blocks.8 --channels 0-(C-1) --steps S --size P`` as a `Renderer` and
times `--timed` steps (not all S: on a shared machine that takes long). Prints the start-up time
(import and model load), the fastest and median step, process CPU seconds per step, and two estimates
of the whole command: start-up + S x fastest step (what an idle machine of this kind gives; the
fastest step is the one least slowed by other jobs) and start-up + S x median step (this run's load).
"""

from __future__ import annotations

import argparse
import statistics
import time

START = time.perf_counter()

import torch  # noqa: E402

import phosphene  # noqa: E402
from phosphene import RenderConfig, Renderer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--timed", type=int, default=12, help="steps to time (after one warm-up step)")
    args = parser.parse_args()
    model = phosphene.load_model("efficientnet_lite0", device="cpu")
    startup = time.perf_counter() - START
    walls, cpus = [], []
    config = RenderConfig(steps=args.steps, size=args.size, seed=0)
    with Renderer(model, phosphene.objectives.channel("_blocks.8", range(args.channels)),
                  config=config) as renderer:
        renderer.step()  # warm-up: the first pass of a shape is slow on CPU
        for _ in range(args.timed):
            wall, cpu = time.perf_counter(), time.process_time()
            renderer.step()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    fastest, median = min(walls), statistics.median(walls)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.channels} channels, "
          f"{args.size} px, {args.steps} steps ({args.timed} timed)")
    print(f"start-up (import + model) {startup:.1f} s")
    print(f"step wall: fastest {fastest:.2f} s, median {median:.2f} s; process CPU per step "
          f"median {statistics.median(cpus):.2f} s")
    print(f"estimate, whole command: {startup + args.steps * fastest:.0f} s (fastest step), "
          f"{startup + args.steps * median:.0f} s (median step, this load)")


if __name__ == "__main__":
    main()
