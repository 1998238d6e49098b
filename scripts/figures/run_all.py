"""Every figure script of scripts/figures/, one after the other, into OUT/<figure>/, with its time.

    python scripts/figures/run_all.py --out out/figures [--size 32 --steps 2] [--only accent_crops,...]

``--size`` and ``--steps`` (when given) are passed to every script; without them each uses its defaults
(the sizes of docs/figures.md). The accentuation figures read the sample images
($PHOSPHENE_SHARED/data/imagenet-samples, else ../shared/data/imagenet-samples). Stops at the first
script that fails, with its exit status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

FIGURES = ("objectives", "regularization", "parameterization", "diversity", "interpolation", "directions",
           "accent_classes", "accent_sweeps", "accent_crops", "accent_inhibited", "inhibition_layers",
           "inhibition_tension", "inhibition_inversion", "inhibition_atlas", "psychophysics", "alpha",
           "dictionary_atoms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    sizes = [*(["--size", str(args.size)] if args.size else []),
             *(["--steps", str(args.steps)] if args.steps else [])]
    names = args.only.split(",") if args.only else FIGURES
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        print(f"unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    for name in names:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(here / f"{name}.py"), *sizes, "--out",
                               str(Path(args.out) / name)])
        if done.returncode:
            print(f"{name}: failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
