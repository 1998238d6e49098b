"""Peak memory of decoding huge-but-small files (issue 27): ~100-megapixel 16-bit RGBA PNGs of a few
hundred KB among ordinary JPEGs.

    .venv/bin/python benchmarks/bench_decode_memory.py --make /tmp/decode-corpus   # write the files
    /usr/bin/time -v .venv/bin/phosphene mine /tmp/decode-corpus/mixed --layers _blocks.8 \\
        --out /tmp/decode-run --workers 0       # peak RSS: "Maximum resident set size"
    .venv/bin/python benchmarks/bench_decode_memory.py --measure /tmp/decode-corpus [--repo ../main]

``--make`` writes ``jpegs/`` (``--jpegs`` 4000x3000 JPEGs of smooth noise), ``pngs/`` (``--pngs``
square PNGs of ``--side`` px, 16 bits per channel with alpha, mostly flat: 200-800 KB each, written
row by row with zlib so that making them needs no memory) and ``mixed/`` (links to both).
``--measure`` decodes each file with ``read_rgb(path, 224)`` in a fresh subprocess per folder and
prints the peak RSS of that process (``ru_maxrss``) for: the JPEGs alone, the PNGs alone, the
mixed folder, and a baseline (Python with PIL and phosphene imported, nothing decoded); with
``--repo`` the decoder of another checkout (before/after), with ``--max-pixels`` another budget.
Files the decoder refuses are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

CHILD = r"""
import json, resource, sys
from pathlib import Path
try:
    from phosphene.io.decoding import read_rgb, ImageDecodeError
except ImportError:  # a checkout from before the io/ package
    from phosphene.decoding import read_rgb, ImageDecodeError
refused, reasons = 0, {}
for path in sorted(Path(sys.argv[1]).iterdir()) if sys.argv[1] != "-" else []:
    try:
        read_rgb(path, 224, **({"max_pixels": int(sys.argv[2])} if sys.argv[2] != "-" else {}))
    except ImageDecodeError as exc:
        refused += 1
        reasons[str(exc).split(" (")[0]] = reasons.get(str(exc).split(" (")[0], 0) + 1
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "refused": refused, "reasons": reasons}))
"""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16_rgba(path: Path, side: int, seed: int) -> None:
    """A side x side RGBA PNG with 16 bits per channel: flat colour with a few noisy rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    flat = np.zeros((side, 4), dtype=">u2")
    flat[:] = (20000 + 9000 * seed, 30000, 40000, 65535)
    packer = zlib.compressobj(6)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)))
        pending = []
        for y in range(side):
            row = flat if y % 4999 else rng.integers(0, 65535, (side, 4), dtype=np.uint16).astype(">u2")
            pending.append(packer.compress(b"\x00" + row.tobytes()))
            if y % 512 == 511:
                out.write(png_chunk(b"IDAT", b"".join(pending)))
                pending = []
        out.write(png_chunk(b"IDAT", b"".join(pending) + packer.flush()))
        out.write(png_chunk(b"IEND", b""))


def make(root: Path, jpegs: int, pngs: int, side: int) -> None:
    import numpy as np
    from PIL import Image

    for name in ("jpegs", "pngs", "mixed"):
        (root / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(jpegs):
        small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)
        image.save(root / "jpegs" / f"photo_{i:02d}.jpg", quality=90)
    for i in range(pngs):
        write_png16_rgba(root / "pngs" / f"huge_{i}.png", side - 7 * i, i)
    for folder in ("jpegs", "pngs"):
        for path in sorted((root / folder).iterdir()):
            link = root / "mixed" / path.name
            if not link.exists():
                os.symlink(path, link)
    sizes = [p.stat().st_size // 1024 for p in sorted((root / "pngs").iterdir())]
    print(f"wrote {jpegs} JPEGs and {pngs} PNGs ({side}px, {sizes} KB) under {root}")


def measure(root: Path, repo: Path, max_pixels: int | None) -> None:
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    for folder in ("-", "jpegs", "pngs", "mixed"):
        target = "-" if folder == "-" else str(root / folder)
        result = subprocess.run([sys.executable, "-c", CHILD, target, str(max_pixels or "-")],
                                capture_output=True, text=True, env=env, cwd=root)
        if result.returncode:
            raise SystemExit(result.stderr[-2000:])
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(json.dumps({"folder": "baseline" if folder == "-" else folder, **row,
                          "loadavg": open("/proc/loadavg").read().split()[:3]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make", type=Path)
    parser.add_argument("--measure", type=Path)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--jpegs", type=int, default=40)
    parser.add_argument("--pngs", type=int, default=5)
    parser.add_argument("--side", type=int, default=9999)
    parser.add_argument("--max-pixels", type=int, default=None, help="--measure: the decoding budget")
    args = parser.parse_args()
    if args.make:
        make(args.make, args.jpegs, args.pngs, args.side)
    if args.measure:
        measure(args.measure, args.repo.resolve(), args.max_pixels)


if __name__ == "__main__":
    main()
