"""What a mining run is: its settings (`MiningPlan`) and the checked request (`MiningJob`) that
`run_mining` and the sharded executors work from (`prepare`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import OutputError, PhospheneError
from ..io.decoding import IMAGE_SUFFIXES, display_path, scan_images
from ..layers.attachments import attachments
from ..layers.names import check_layers
from ..layers.tap import LayerTap
from ..models import load_model
from ..models.preprocess import spec_for
from ..models.wrapper import as_image_model
from .dataset import (
    DEFAULT_MAX_ASPECT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    Preprocessing,
    list_hash,
)
from .topk import STATS


@dataclass
class MiningPlan:
    """The settings of `run_mining` (``run_mining(model, layers, images, out, plan)``, or its fields
    as keywords).

    - ``k``: images kept per unit and ranking; ``batch_size``: images per forward pass.
    - ``num_workers``: decoding processes (0: in this process).
    - ``size``: the crop side (default: the model's input size); ``crop_fraction``: crop side over
      resize side (default: the model's own, timm's ``crop_pct``).
    - ``min_side``, ``max_pixels``, ``max_aspect``: images smaller, larger or more elongated than
      these are skipped (with the reason).
    - ``checkpoint_every`` batches, and at least every ``checkpoint_seconds``, the state is saved.
    - ``fold``: fold the BatchNorm layers not mined into their convolutions for the run.
    """

    k: int = 16
    batch_size: int = 32
    num_workers: int = 2
    size: int | None = None
    crop_fraction: float | None = None
    min_side: int = DEFAULT_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect: float = DEFAULT_MAX_ASPECT
    checkpoint_every: int = 50
    checkpoint_seconds: float = 120.0
    fold: bool = True


@dataclass
class MiningJob:
    """A checked mining request: the model on its device, the image list, the run's config."""

    model: nn.Module
    device: torch.device
    layers: list[str]
    paths: list[Path]
    relative: list[str]
    prep: Preprocessing
    out: Path
    config: dict
    shapes: dict[str, list[int]]
    unlisted: list[tuple[str, str]]
    plan: MiningPlan = field(default_factory=MiningPlan)

    @property
    def k(self) -> int:
        return self.plan.k

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def fold(self) -> bool:
        return self.plan.fold


def prepare(model: nn.Module | str, layers: Sequence[str], images: str | os.PathLike,
            out: str | os.PathLike, plan: MiningPlan, device: str | torch.device | None = None) -> MiningJob:
    """Check the arguments of `run_mining`, list the images and build the run's config."""
    model = load_model(model, device=device) if isinstance(model, str) else as_image_model(model)
    device = torch.device(device) if device is not None else model.device
    model.to(device)
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise PhospheneError("give at least one layer to mine")
    check_layers(model, layers)
    if plan.k < 1 or plan.batch_size < 1:
        raise PhospheneError("--k and --batch-size must be at least 1")
    root, out = Path(images), Path(out)
    paths, unlisted = _list_folder(root)
    crop_fraction = plan.crop_fraction or spec_for(model).crop_fraction  # the model's own (crop_pct)
    prep = Preprocessing(model.side(plan.size), crop_fraction, plan.min_side, plan.max_pixels,
                         plan.max_aspect)
    _make_out(out)
    with LayerTap(model, layers, truncate=True) as tap:
        shapes = _layer_shapes(tap, prep.size, device)
    config = {
        "model": model.name, "layers": layers, "k": plan.k,
        "batch_size": plan.batch_size, "stats": list(STATS), "preprocessing": prep.describe(),
        "image_root": str(root.resolve()), "n_images": len(paths),
        "image_list_sha256": list_hash(root, paths),
    }
    mined_atoms = {name: d for name, d in attachments(model).items() if name in layers}
    if mined_atoms:  # only then: runs without atom layers keep the config they always had
        config["dictionaries"] = mined_atoms
    relative = [p.relative_to(root).as_posix() for p in paths]
    return MiningJob(model, device, layers, paths, relative, prep, out, config, shapes, unlisted, plan)


def _layer_shapes(tap: LayerTap, size: int, device: torch.device) -> dict[str, list[int]]:
    """Output shape (without batch) of each tapped layer; the tap learns where to stop."""
    with torch.inference_mode():
        acts = tap(torch.full((1, 3, size, size), 0.5, device=device))
    return {name: list(acts[name].shape[1:]) for name in tap.layers}


@contextmanager
def writing(out: Path) -> Iterator[None]:
    """Turn a failed write into `OutputError` (one line); earlier checkpoints stay intact."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({display_path(exc.filename)})" if exc.filename else ""
        raise OutputError(f"cannot write the run folder {out}: {reason}{where}; the last checkpoint "
                          "is intact, rerun the same command once the problem is fixed") from None


def _list_folder(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files under ``root`` and its unreadable subfolders; `PhospheneError` if none."""
    if not root.is_dir():
        raise PhospheneError(f"image folder not found: {root}")
    paths, unlisted = scan_images(root)
    if not paths:
        raise PhospheneError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}"
                             + (f"; {len(unlisted)} subfolders unreadable" if unlisted else ""))
    return paths, unlisted


def _make_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
