"""`run_mining`: stream an image folder through a truncated model, keep per-unit top/bottom-k.

Resumable: every ``checkpoint_every`` batches (and at least every ``checkpoint_seconds``) the running
state is written atomically; rerunning the same call continues after the last checkpoint. Batches are
fixed ranges of the sorted file list and the merge order is total (value, then image index), so a
resumed run ends with exactly the tables of an uninterrupted one.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import OutputError, PhospheneError
from ..io.decoding import IMAGE_SUFFIXES, display_path, scan_images
from ..io.images import remove_stale_temporaries
from ..io.progress import progress_enabled
from ..layers.folding import fold_batchnorm
from ..layers.model_state import memory_format, model_device, resolve_channels_last
from ..layers.names import check_layers
from ..layers.tap import LayerTap
from ..models import load_model
from ..models.input_shape import model_side
from ..models.preprocess import spec_for
from . import store
from .dataset import (
    DEFAULT_MAX_ASPECT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    Preprocessing,
    batch_loader,
    list_hash,
)
from .lock import run_lock
from .reader import MiningRun
from .topk import STATS, LayerExtremes

if TYPE_CHECKING:
    from .sharded import ShardExecutor


def _versions() -> dict[str, str]:
    import numpy
    import PIL
    import pyarrow

    from .. import __version__

    return {"phosphene": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "pyarrow": pyarrow.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


def _layer_shapes(tap: LayerTap, size: int, device: torch.device) -> dict[str, list[int]]:
    """Output shape (without batch) of each tapped layer; the tap learns where to stop."""
    with torch.inference_mode():
        acts = tap(torch.full((1, 3, size, size), 0.5, device=device))
    return {name: list(acts[name].shape[1:]) for name in tap.layers}


def _check_same_run(out: Path, old: dict, config: dict, relative: list[str]) -> None:
    differing = [key for key in config if old.get("config", {}).get(key) != config[key]]
    if set(differing) <= {"n_images", "image_list_sha256"} and differing:
        raise PhospheneError(_folder_changed(out, store.read_image_list(out), relative))
    if differing:
        raise PhospheneError(
            f"{out} holds a different mining run ({', '.join(differing)} differ); "
            "rerun the original command to resume it, or choose another --out")


def _folder_changed(out: Path, old: list[str], new: list[str]) -> str:
    """What changed in the image folder since the run in ``out`` started, and what to do."""
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))

    def some(names: list[str]) -> str:
        shown = ", ".join(display_path(n) for n in names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    parts = ([f"{len(added)} added ({some(added)})"] if added else []) + \
            ([f"{len(removed)} removed ({some(removed)})"] if removed else [])
    change = "; ".join(parts) or "files changed size"
    return (f"the image folder changed since the run in {out} started: {change}. Restore the folder "
            f"to resume that run, or start a new run with another --out (or delete {out})")


@contextmanager
def _writing(out: Path) -> Iterator[None]:
    """Turn a failed write into `OutputError` (one line); earlier checkpoints stay intact."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({display_path(exc.filename)})" if exc.filename else ""
        raise OutputError(f"cannot write the run folder {out}: {reason}{where}; the last checkpoint "
                          "is intact, rerun the same command once the problem is fixed") from None


def _check_used(out: Path, manifest: dict) -> None:
    summary = manifest.get("summary", {})
    if summary.get("n_used", 1) == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in summary.get("skipped_by_reason", {}).items())
        raise PhospheneError(f"none of the {summary.get('n_images')} images could be used "
                             f"({reasons}); see {out / store.SKIPPED}")


@dataclass
class MiningPlan:
    """A checked mining request: what `run_mining` and the sharded executors work from."""

    model: nn.Module
    device: torch.device
    layers: list[str]
    paths: list[Path]
    relative: list[str]
    prep: Preprocessing
    out: Path
    k: int
    batch_size: int
    config: dict
    shapes: dict[str, list[int]]
    unlisted: list[tuple[str, str]]
    fold: bool = True


def plan_mining(model: nn.Module | str, layers: Sequence[str], images: str | os.PathLike,
                out: str | os.PathLike, k: int = 16, batch_size: int = 32, size: int | None = None,
                crop_fraction: float | None = None, min_side: int = DEFAULT_MIN_SIDE,
                max_pixels: int = DEFAULT_MAX_PIXELS, max_aspect: float = DEFAULT_MAX_ASPECT,
                device: str | torch.device | None = None) -> MiningPlan:
    """Check the arguments of `run_mining`, list the images and build the run's config."""
    if isinstance(model, str):
        model = load_model(model, device=device)
    device = torch.device(device) if device is not None else model_device(model)
    model.to(device)
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise PhospheneError("give at least one layer to mine")
    check_layers(model, layers)
    if k < 1 or batch_size < 1:
        raise PhospheneError("--k and --batch-size must be at least 1")
    root, out = Path(images), Path(out)
    paths, unlisted = _list_folder(root)
    crop_fraction = crop_fraction or spec_for(model).crop_fraction  # the model's own (timm's crop_pct)
    prep = Preprocessing(model_side(model, size), crop_fraction, min_side, max_pixels,
                         max_aspect)
    _make_out(out)
    with LayerTap(model, layers, truncate=True) as tap:
        shapes = _layer_shapes(tap, prep.size, device)
    config = {
        "model": getattr(model, "name", type(model).__name__), "layers": layers, "k": k,
        "batch_size": batch_size, "stats": list(STATS), "preprocessing": prep.describe(),
        "image_root": str(root.resolve()), "n_images": len(paths),
        "image_list_sha256": list_hash(root, paths),
    }
    relative = [p.relative_to(root).as_posix() for p in paths]
    return MiningPlan(model, device, layers, paths, relative, prep, out, k, batch_size, config, shapes,
                      unlisted)


def run_mining(
    model: nn.Module | str,
    layers: Sequence[str],
    images: str | os.PathLike,
    out: str | os.PathLike,
    k: int = 16,
    batch_size: int = 32,
    num_workers: int = 2,
    size: int | None = None,
    crop_fraction: float | None = None,
    min_side: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    checkpoint_every: int = 50,
    checkpoint_seconds: float = 120.0,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    executor: ShardExecutor | None = None,
    fold: bool = True,
) -> MiningRun:
    """Mine the top-k / bottom-k images of every unit of ``layers`` over the folder ``images``.

    ``model`` is an `ImageModel` (or a registered name). Writes the run folder ``out`` (see
    `phosphene.mining.store`) and returns it opened. Rerunning with the same arguments resumes an
    interrupted run (or returns a finished one); other arguments on an existing run raise
    `PhospheneError`; a second run on the same ``out`` at the same time is refused (a lock file).
    ``executor`` (e.g. `phosphene.distributed.RayExecutor`) mines fixed shards of the image list on
    its workers instead (`phosphene.mining.sharded`): the same tables. ``fold`` folds the BatchNorm
    layers not mined into their convolutions for the run (`fold_batchnorm`; a model in training
    mode is left as it is).
    """
    plan = plan_mining(model, layers, images, out, k, batch_size, size, crop_fraction, min_side,
                       max_pixels, max_aspect, device)
    plan.fold = fold
    out = plan.out
    with run_lock(out):
        remove_stale_temporaries(out)  # half-written files of a killed run (the lock is ours)
        with _writing(out):
            status = _open_or_create(out, plan.config, plan.shapes, plan.relative, plan.unlisted)
        if status != "complete":
            if executor is not None:
                from .sharded import mine_sharded

                with _writing(out):
                    mine_sharded(plan, executor, num_workers, checkpoint_every, checkpoint_seconds,
                                 progress)
            else:
                _mine_here(plan, num_workers, checkpoint_every, checkpoint_seconds, progress)
    _check_used(out, store.read_json(out / store.MANIFEST))
    return MiningRun(out)


def _mine_here(plan: MiningPlan, num_workers: int, checkpoint_every: int, checkpoint_seconds: float,
               progress: bool | None) -> None:
    """The single-process loop: resume from the checkpoint, stream the rest, write the tables."""
    model, device, layers, paths, prep, out = (plan.model, plan.device, plan.layers, plan.paths,
                                               plan.prep, plan.out)
    batch_size = plan.batch_size
    channels_last = resolve_channels_last(None, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with memory_format(model, channels_last), fold_batchnorm(model, layers, prep.size, device, plan.fold), \
            LayerTap(model, layers, truncate=True) as tap:
        extremes, processed, skipped = _resume(out, layers, plan.shapes, plan.k, device)
        start_time = time.perf_counter()
        loader = batch_loader(paths, prep, batch_size, start=processed, num_workers=num_workers,
                              pin_memory=device.type == "cuda")
        bar = tqdm(total=-(-len(paths) // batch_size), initial=processed // batch_size, unit="batch",
                   desc="mining", disable=not progress_enabled(progress))
        last_save, since_save = time.monotonic(), 0
        with torch.inference_mode(), bar:
            for batch in loader:
                skipped.extend(batch.skipped)
                if len(batch.indices):
                    images = batch.images.to(device, non_blocking=True).float().div_(255)
                    acts = tap(images.contiguous(memory_format=fmt))
                    index = batch.indices.to(device, non_blocking=True)
                    for name in layers:
                        extremes[name].update(acts[name], index)
                processed = min(processed + batch_size, len(paths))
                since_save += 1
                bar.update(1)
                if since_save >= checkpoint_every or time.monotonic() - last_save >= checkpoint_seconds:
                    with _writing(out):
                        store.save_checkpoint(out, processed, store.states_of(extremes), skipped)
                    last_save, since_save = time.monotonic(), 0
        with _writing(out):
            store.save_checkpoint(out, processed, store.states_of(extremes), skipped)
            store.finish_run(out, store.states_of(extremes), plan.shapes, plan.relative, skipped,
                             time.perf_counter() - start_time)


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
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)


def _open_or_create(out: Path, config: dict, shapes: dict, relative: list[str],
                    unlisted: list[tuple[str, str]]) -> str:
    """Check the manifest of an existing run against ``config`` or start a new run; its status."""
    manifest_path = out / store.MANIFEST
    if manifest_path.is_file():
        old = store.read_json(manifest_path)
        _check_same_run(out, old, config, relative)
        return old.get("status", "running")
    store.write_image_list(out, relative)
    store.write_json(manifest_path, {"format": 1, "status": "running", "config": config,
                                     "layer_shapes": shapes, "versions": _versions(),
                                     "unlisted": [list(u) for u in unlisted]})
    return "running"


def _resume(out: Path, layers: list[str], shapes: dict, k: int, device: torch.device):
    """(running extremes per layer, files processed, skipped files) from the last checkpoint."""
    extremes = {name: LayerExtremes(shapes[name][0], k, device) for name in layers}
    checkpoint = store.load_checkpoint(out)
    if checkpoint is None:
        return extremes, 0, []
    for name in layers:
        extremes[name].load(checkpoint["state"][name])
    return extremes, checkpoint["processed"], [tuple(s) for s in checkpoint["skipped"]]
