"""Mining throughput against a bare batched forward, and peak memory when the dataset doubles.

    .venv/bin/python benchmarks/bench_mining.py --images ../shared/data/imagenet-samples

1. bare: the images decoded and centre-cropped beforehand (not timed), then the truncated model
   (`LayerTap`, same layers, same batch size) run over them in batches under inference_mode;
2. mining: `run_mining` over the folder (decoding in worker processes, top/bottom-k merges,
   checkpoints, Parquet output), timed end to end from a fresh run folder;
   1 and 2 alternate ``--repeat`` times in one process; the ratio of medians is reported.
3. memory: `phosphene mine` in a fresh subprocess over the folder, then over a folder holding every
   image twice (two sub-folders of links); peak RSS (VmHWM) of the mining process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phosphene import load_model  # noqa: E402
from phosphene.io.images import list_images  # noqa: E402
from phosphene.layers.tap import LayerTap  # noqa: E402
from phosphene.mining import run_mining  # noqa: E402
from phosphene.mining.dataset import Preprocessing, decode_image  # noqa: E402


def bare_forward(model, layers, images: torch.Tensor, batch_size: int) -> float:
    """Seconds for the truncated forward over uint8 ``images`` (N, 3, S, S) in batches."""
    with LayerTap(model, layers) as tap, torch.inference_mode():
        tap(images[:1].float() / 255)  # learn where to stop
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            tap(images[i:i + batch_size].float().div_(255))
        return time.perf_counter() - start


def peak_rss_of_mining(folder: Path, out: Path, args) -> float:
    """Peak resident memory (MiB) of a fresh process mining ``folder``."""
    code = (
        "import sys, torch; from phosphene import load_model; from phosphene.mining import run_mining\n"
        f"torch.set_num_threads({args.threads})\n"
        f"run_mining(load_model(), {args.layers.split(',')!r}, {str(folder)!r}, {str(out)!r}, k={args.k}, "
        f"batch_size={args.batch_size}, num_workers={args.workers}, size={args.size}, progress=False)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--images", default=str(REPO.parent / "shared" / "data" / "imagenet-samples"))
    parser.add_argument("--layers", default="_blocks.8,_blocks.10")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = args.layers.split(",")
    folder = Path(args.images)
    paths = list_images(folder)
    model = load_model("efficientnet_lite0", device="cpu")
    prep = Preprocessing(args.size)
    images = torch.stack([torch.from_numpy(decode_image(p, prep)) for p in paths])
    bare, mined = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            bare.append(bare_forward(model, layers, images, args.batch_size))
            start = time.perf_counter()
            run_mining(model, layers, folder, Path(tmp) / f"run{r}", k=args.k, batch_size=args.batch_size,
                       num_workers=args.workers, size=args.size, progress=False)
            mined.append(time.perf_counter() - start)
            print(f"repeat {r}: bare {len(paths) / bare[-1]:.1f} img/s, mining {len(paths) / mined[-1]:.1f} "
                  f"img/s", flush=True)
        result = {
            "images": len(paths), "layers": layers, "size": args.size, "batch_size": args.batch_size,
            "workers": args.workers, "threads": args.threads,
            "bare_images_per_s": round(len(paths) / statistics.median(bare), 2),
            "mining_images_per_s": round(len(paths) / statistics.median(mined), 2),
        }
        result["ratio"] = round(result["mining_images_per_s"] / result["bare_images_per_s"], 3)
        if not args.skip_memory:
            doubled = Path(tmp) / "doubled"
            for copy in ("a", "b"):
                (doubled / copy).mkdir(parents=True)
                for p in paths:
                    (doubled / copy / p.name).symlink_to(p.resolve())
            result["peak_rss_mib_1x"] = round(peak_rss_of_mining(folder, Path(tmp) / "m1", args), 1)
            result["peak_rss_mib_2x"] = round(peak_rss_of_mining(doubled, Path(tmp) / "m2", args), 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
