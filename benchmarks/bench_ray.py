"""Mining throughput on Ray (1 and 2 local workers) relative to the plain single-process run.

    .venv/bin/python benchmarks/bench_ray.py --images ../shared/data/imagenet-samples --n 160

In one process, alternating ``--repeat`` times (fresh run folder each time):

1. plain: `run_mining` as `phosphene mine` runs it (``--workers`` decoding processes, torch threads
   as set by ``--threads``);
2. ray1 / ray2: the same call with a `RayExecutor` on a local Ray (started once, before the clock)
   holding 1 / 2 workers of 1 CPU each (decoding inline in the worker), ``--shard-batches`` batches
   per shard. The clock includes starting the workers and shipping the model (as in a real run);
   "steady" is the throughput between the first and the last finished shard.

``--memory-only``: the peak resident memory of one mining worker at batch 8 and 32 instead.

Also: decoding alone (JPEG -> 224 px crop, one core) per image, and the forward + top-k per image
(the plain run's time minus decoding, per core), and from them a paper estimate for ImageNet-train.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Timer  # noqa: E402

from phosphene import load_model  # noqa: E402
from phosphene.distributed.executor import RayExecutor, import_ray  # noqa: E402
from phosphene.io.images import list_images  # noqa: E402
from phosphene.mining import run_mining  # noqa: E402
from phosphene.mining.dataset import Preprocessing, decode_image  # noqa: E402

IMAGENET_TRAIN = 1_281_167


class TimedExecutor(RayExecutor):
    """Records when each shard result reaches the driver."""

    def map(self, job, tasks, on_result):
        self.arrivals: list[tuple[float, int]] = []

        def record(task, result):
            self.arrivals.append((time.perf_counter(), task.stop - task.start))
            on_result(task, result)

        super().map(job, tasks, record)

    def steady(self) -> float:
        """Images per second between the first and the last arrival."""
        (t0, _), (t1, _) = self.arrivals[0], self.arrivals[-1]
        return sum(n for _, n in self.arrivals[1:]) / max(t1 - t0, 1e-9)


class PeakMemory:
    """Wraps a job; each result also carries the worker's peak and current resident MB."""

    def __init__(self, job):
        self.job = job

    def setup(self, device):
        return self.job.setup(device)

    def run(self, context, task):
        result = self.job.run(context, task)
        status = Path("/proc/self/status").read_text().splitlines()
        result["memory"] = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status
                            if line.startswith(("VmHWM", "VmRSS"))}
        return result


class MemoryExecutor(RayExecutor):
    def map(self, job, tasks, on_result):
        self.memory: list[dict] = []

        def record(task, result):
            self.memory.append(result["memory"])
            on_result(task, result)

        super().map(PeakMemory(job), tasks, record)


def worker_memory(model, layers: list[str], folder: Path, tmp: Path) -> None:
    """Peak resident memory of one 1-CPU mining worker over 64 images, at batch 8 and 32."""
    for batch_size in (8, 32):
        with MemoryExecutor("local", workers=1, shard_batches=1) as executor:
            run_mining(model, layers, folder, tmp / f"memory-{batch_size}", k=16, batch_size=batch_size,
                       size=224, num_workers=0, progress=False, executor=executor)
        peak = max(m["VmHWM"] for m in executor.memory)
        print(f"worker memory, batch {batch_size}: peak {peak} MB, between shards "
              f"{min(m['VmRSS'] for m in executor.memory)}-{max(m['VmRSS'] for m in executor.memory)} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--images", required=True)
    parser.add_argument("--n", type=int, default=160, help="first N images of the folder")
    parser.add_argument("--layers", default="_blocks.4,_blocks.8")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-batches", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the plain run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the plain run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-only", action="store_true",
                        help="only the worker-memory probe (64 images, batch 8 and 32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = args.layers.split(",")
    paths = list_images(args.images)[: 64 if args.memory_only else args.n]
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    folder = tmp / "images"
    folder.mkdir()
    for path in paths:
        (folder / path.name).symlink_to(path.resolve())
    model = load_model("efficientnet_lite0", device="cpu")
    ray = import_ray()
    with Timer() as start:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    if args.memory_only:
        worker_memory(model, layers, folder, tmp)
        return ray.shutdown()
    print(f"{len(paths)} images, layers {layers}, batch {args.batch_size}, k {args.k}, 224 px; "
          f"Ray start {start.wall:.1f} s (not in the figures)")

    common = dict(k=args.k, batch_size=args.batch_size, size=224, progress=False)
    walls: dict[str, list[float]] = {"plain": [], "ray1": [], "ray2": []}
    steady: dict[str, list[float]] = {"ray1": [], "ray2": []}
    for rep in range(args.repeat):
        for name in walls:
            out = tmp / f"{name}-{rep}"
            if name == "plain":
                with Timer() as t:
                    run_mining(model, layers, folder, out, num_workers=args.workers, **common)
            else:
                with TimedExecutor("local", workers=int(name[-1]), shard_batches=args.shard_batches) as ex, \
                        Timer() as t:
                    run_mining(model, layers, folder, out, num_workers=0, executor=ex, **common)
                steady[name].append(ex.steady())
            walls[name].append(t.wall)
            print(f"  rep {rep} {name:<5} {t.wall:6.1f} s  {len(paths) / t.wall:5.1f} img/s"
                  + (f"  steady {steady[name][-1]:5.1f} img/s" if name in steady else ""), flush=True)
    ray.shutdown()

    prep = Preprocessing(224)
    torch.set_num_threads(1)
    with Timer() as dec:
        for path in paths[:48]:
            decode_image(path, prep)
    decode_s = dec.wall / 48
    med = {name: statistics.median(w) for name, w in walls.items()}
    rate = {name: len(paths) / w for name, w in med.items()}
    print(f"\nmedians over {args.repeat} runs (images/s, end to end):")
    for name in walls:
        extra = f", steady {statistics.median(steady[name]):.1f}" if name in steady else ""
        print(f"  {name:<5} {rate[name]:6.1f} img/s  x{rate[name] / rate['plain']:.2f} of plain{extra}")
    print(f"  ray2 / ray1 end to end x{rate['ray2'] / rate['ray1']:.2f}, steady "
          f"x{statistics.median(steady['ray2']) / statistics.median(steady['ray1']):.2f}")
    per_core = 1 / statistics.median(steady["ray1"])  # core-seconds per image, one 1-CPU worker
    print(f"\nper image on one core: {per_core * 1000:.0f} ms (decode {decode_s * 1000:.0f} ms, "
          f"forward + top-k {(per_core - decode_s) * 1000:.0f} ms)")
    for n in (8, 64, 256):
        hours = IMAGENET_TRAIN * per_core / n / 3600
        print(f"  ImageNet-train on {n:>3} CPU workers (1 core each): {hours:6.1f} h")
    for gpus in (1, 8, 32):
        hours = IMAGENET_TRAIN * decode_s / (gpus * 8) / 3600
        print(f"  ImageNet-train on {gpus:>2} GPUs, 8 decoding cores each, if the GPU keeps up: "
              f"{hours * 60:6.1f} min")


if __name__ == "__main__":
    main()
