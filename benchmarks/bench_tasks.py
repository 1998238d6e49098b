"""Time every README Tasks row at one quality preset: wall time, CPU time and peak RSS per command.

    python benchmarks/bench_tasks.py --quality draft --out /tmp/tasks [--images DIR] [--only render,report]

Runs each command as a subprocess (as a user would), in order (later rows use the mining run the
`mine` row writes), and prints a Markdown table with the load average before and after each command.
Peak RSS is the command's own maximum resident set (``wait4``), so a row's memory is that command's.
Needs ../shared/data/imagenet-samples (or ``--images``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "imagenet-samples"
IMAGE = "n01440764_tench.JPEG"


def tasks(images: Path, out: Path, quality: str) -> list[tuple[str, list[str]]]:
    """(README row, command) pairs, each with ``--quality`` where the verb has presets."""
    run, image = out / "run", images / IMAGE
    q = ["--quality", quality]
    return [
        ("render: 8 channels", ["render", "--layer", "_blocks.8", "--channels", "0-7", *q,
                                "--out", str(out / "quickstart")]),
        ("render: 16 units", ["render", "--layer", "_blocks.8", "--channels", "0-15", *q,
                              "--out", str(out / "blocks8")]),
        ("accentuate", ["accentuate", "--image", str(image), "--class", "1", "--reg-layer", "_blocks.8", *q,
                        "--out", str(out / "accent")]),
        ("mine (no preset)", ["mine", "--layers", "_blocks.4,_blocks.8,_blocks.12", "--images", str(images),
                              "--k", "16", "--out", str(run)]),
        ("tension", ["tension", "--images", str(images), "--target", "_blocks.8._relu1:337",
                     "--attr-layer", "_blocks.7", *q, "--out", str(out / "tension")]),
        ("invert", ["invert", "--image", str(image), "--target", "_blocks.9:5", "--attr-layer", "_blocks.6",
                    *q, "--out", str(out / "invert")]),
        ("atlas", ["atlas", "--images", str(images), "--target", "_blocks.8._relu1:337",
                   "--attr-layer", "_blocks.7", *q, "--out", str(out / "atlas")]),
        ("experiment stimuli", ["experiment", "stimuli", "--run", str(run), *q, "--out", str(out / "psy")]),
        ("report: 16 units", ["report", str(run), "--layers", "_blocks.8", "--units", "0-15", *q,
                              "--out", str(out / "site")]),
        ("experiment score", ["experiment", "score", str(out / "psy"), *q, "--out", str(out / "score")]),
    ]


def run_one(command: list[str]) -> dict:
    """Run ``phosphene COMMAND``; its wall time, CPU time, peak RSS and exit status."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    executable = shutil.which("phosphene", path=str(Path(sys.executable).parent)) or "phosphene"
    process = subprocess.Popen([executable, *command], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr_lines: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:  # drain while it runs, keep the tail for failures
        stderr_lines = (stderr_lines + [line.decode(errors="replace")])[-20:]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "rc": process.returncode,
            "load_before": load, "load_after": os.getloadavg()[0], "tail": "".join(stderr_lines[-5:])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", choices=("draft", "standard", "publication"), default="draft")
    parser.add_argument("--images", type=Path, default=SAMPLES)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated row names (prefixes) to run")
    args = parser.parse_args()
    if not args.images.is_dir():
        print(f"{args.images} not found", file=sys.stderr)
        return 2
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    wanted = args.only.split(",") if args.only else None
    rows = []
    print(f"| task (`--quality {args.quality}`) | wall | CPU | peak RSS | load (1 min) before/after |")
    print("|---|---|---|---|---|")
    for name, command in tasks(args.images, args.out, args.quality):
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        result = run_one(command)
        rows.append({"task": name, "command": "phosphene " + " ".join(command), **result})
        status = "" if result["rc"] == 0 else f" (exit {result['rc']}: {result['tail'].strip()[-200:]})"
        print(f"| {name} | {result['wall_s']:.0f} s | {result['cpu_s']:.0f} s | "
              f"{result['peak_rss_mb']:.0f} MB | {result['load_before']:.1f}/{result['load_after']:.1f} |"
              + status, flush=True)
    (args.out / "tasks.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
