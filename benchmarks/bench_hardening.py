"""Peak memory of mining a corpus with resize bombs against the same corpus without them.

    .venv/bin/python benchmarks/bench_hardening.py --images ../shared/data/imagenet-samples

Two corpora of links to the first ``--count`` sample images; the second also holds two tiny PNG
resize bombs: 100000x8 (2.4 KB) and 1000000x64 (about 70 KB), both mostly zeros. The corpus with
bombs is mined twice: with the default limits (the bombs are refused from their header for their
aspect ratio) and with the aspect limit lifted (``max_aspect=inf``, and the decoding budget raised
to 100 megapixels so that the 64-megapixel bomb is not refused by it either: the bombs are decoded,
and only the centre region is converted and resized). Each run is `run_mining` in a fresh subprocess
(``--workers`` decoding processes); the subprocess
reports the peak RSS of itself (the model and the top-k state) and of its decoding workers
(``RUSAGE_CHILDREN``, the largest of them). Runs alternate ``--repeat`` times; medians and the
ratios to the clean corpus are printed (the hardening issue's target: at most 1.5x).

For context (``--legacy``), the 100000x8 bomb is also decoded the way phosphene did before the
hardening (the whole image resized so that its short side is 256 px, then cropped) in a fresh
subprocess; the 1000000x64 bomb is left out there (it needed more than 6 GiB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phosphene.io.images import list_images  # noqa: E402

CHILD = """
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
from phosphene import load_model
from phosphene.mining import run_mining
model = load_model("efficientnet_lite0", device="cpu")
start = time.perf_counter()
run = run_mining(model, ["_blocks.8"], sys.argv[1], sys.argv[2], k=8, batch_size=16,
                 num_workers={workers}, max_aspect=float(sys.argv[3]),
                 max_pixels=100_000_000 if sys.argv[3] == "inf" else 40_000_000, progress=False)
seconds = time.perf_counter() - start
kib = 1024.0
print(json.dumps({{"main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
                  "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib,
                  "seconds": seconds, "skipped": run.manifest["summary"]["skipped_by_reason"]}}))
"""

LEGACY = """
import resource, sys
from PIL import Image
image = Image.open(sys.argv[1]); image.load(); image = image.convert("RGB")
w, h = image.size; scale = 256 / min(w, h)
image = image.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.Resampling.BICUBIC)
w, h = image.size; image.crop(((w - 224) // 2, (h - 224) // 2, (w - 224) // 2 + 224, (h - 224) // 2 + 224))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def write_bombs(folder: Path) -> None:
    from PIL import Image

    Image.new("L", (100_000, 8)).save(folder / "bomb_wide.png", optimize=True)
    Image.new("L", (1_000_000, 64)).save(folder / "bomb_huge.png", optimize=True)


def mine(folder: Path, out: Path, max_aspect: float, args) -> dict:
    code = CHILD.format(threads=args.threads, workers=args.workers)
    result = subprocess.run([sys.executable, "-c", code, str(folder), str(out), str(max_aspect)],
                            capture_output=True,
                            text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    if result.returncode:
        raise SystemExit(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/imagenet-samples")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--legacy", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean, bombs = tmp / "clean", tmp / "bombs"
        for folder in (clean, bombs):
            folder.mkdir()
            for path in list_images(args.images)[:args.count]:
                (folder / path.name).symlink_to(path.resolve())
        write_bombs(bombs)
        variants = (("clean", clean, 20.0), ("bombs", bombs, 20.0), ("bombs_no_aspect_limit", bombs,
                                                                     float("inf")))
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
        for i in range(args.repeat):
            for name, folder, max_aspect in variants:
                runs[name].append(mine(folder, tmp / f"run-{name}-{i}", max_aspect, args))
                print(name, runs[name][-1], flush=True)
        legacy = None
        if args.legacy:
            result = subprocess.run([sys.executable, "-c", LEGACY, str(bombs / "bomb_wide.png")],
                                    capture_output=True, text=True, check=True)
            legacy = float(result.stdout.strip())
    summary: dict = {}
    for key in ("main_mib", "worker_mib", "seconds"):
        medians = {name: statistics.median(r[key] for r in rows) for name, rows in runs.items()}
        summary[key] = {name: round(m, 1) for name, m in medians.items()}
    peak = {name: statistics.median(max(r["main_mib"], r["worker_mib"]) for r in rows)
            for name, rows in runs.items()}
    summary["peak_mib"] = {name: round(m, 1) for name, m in peak.items()}
    summary["skipped"] = {name: rows[0]["skipped"] for name, rows in runs.items()}
    summary["legacy_wide_bomb_mib"] = legacy
    names = list(runs)
    print(f"{'median':<12}" + "".join(f"{n:>24}" for n in names) + "   ratios to clean")
    for key in ("peak_mib", "main_mib", "worker_mib", "seconds"):
        row = summary[key]
        ratios = " ".join(f"{row[n] / row['clean']:.3f}" for n in names[1:])
        print(f"{key:<12}" + "".join(f"{row[n]:>24}" for n in names) + f"   {ratios}")
    print(f"skipped: {summary['skipped']}")
    if legacy is not None:
        print(f"legacy decode of the 100000x8 bomb alone: peak RSS {legacy:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
