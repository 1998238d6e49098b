"""Helpers shared by the figure scripts (not a figure itself): the sample images, the common options
and writing a figure's PNG and JSON."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import phosphene

REPO = Path(__file__).resolve().parents[2]


def samples_dir() -> Path:
    """$PHOSPHENE_SHARED/data/imagenet-samples, else ../shared/data/imagenet-samples beside the repo."""
    shared = Path(os.environ.get("PHOSPHENE_SHARED", REPO.parent / "shared"))
    return shared / "data" / "imagenet-samples"


def parser(doc: str, size: int, steps: int | None) -> argparse.ArgumentParser:
    """--model, --size, --steps (accepted and ignored when ``steps`` is None: run_all passes it to
    every figure), --samples, --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--steps", type=int, default=steps,
                        help="optimization steps" if steps else "unused (this figure optimizes nothing)")
    parser.add_argument("--samples", default=None, help="sample images (default: samples_dir())")
    parser.add_argument("--out", required=True)
    return parser


def load_seeds(args: argparse.Namespace, names: list[str]) -> torch.Tensor:
    """The sample images ``names`` as an (N, 3, size, size) batch; a clear exit when absent."""
    folder = Path(args.samples) if args.samples else samples_dir()
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"sample images not found: {', '.join(missing)} in {folder} "
                         "(--samples or PHOSPHENE_SHARED)")
    return torch.stack([phosphene.load_image(folder / n, args.size) for n in names])


def sample_subset(args: argparse.Namespace, count: int, folder: Path) -> Path:
    """``folder`` holding links to the first ``count`` sample images (sorted), for the folder-reading
    verbs (`compute_tension`, `tension_report`)."""
    source = Path(args.samples) if args.samples else samples_dir()
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if not images:
        raise SystemExit(f"no sample images in {source} (--samples or PHOSPHENE_SHARED)")
    folder.mkdir(parents=True, exist_ok=True)
    for image in images[:count]:
        link = folder / image.name
        if not link.exists():
            link.symlink_to(image.resolve())
    return folder


def write(args: argparse.Namespace, name: str, picture: Image.Image, record: dict[str, Any],
          started: float) -> dict[str, Any]:
    """OUT/name.png and OUT/name.json (the settings, ``record`` and the seconds since ``started``)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    picture.save(out / f"{name}.png")
    record = {"settings": vars(args), **record, "seconds": round(time.perf_counter() - started, 1)}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(f"-> {out}/{name}.png ({record['seconds']} s)")
    return record
