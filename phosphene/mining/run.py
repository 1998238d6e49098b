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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy
import PIL
import pyarrow
import torch
from torch import nn

from ..errors import PhospheneError
from ..io.decoding import display_path
from ..io.images import remove_stale_temporaries
from ..io.progress import progress_bar
from ..layers.folding import fold_batchnorm
from ..layers.model_state import memory_format, resolve_channels_last
from ..layers.tap import LayerTap
from ..settings import with_overrides
from ..version import __version__
from . import store
from .dataset import batch_loader
from .lock import run_lock
from .plan import MiningJob, MiningPlan, prepare, writing
from .reader import MiningRun
from .sharded import ShardExecutor, mine_sharded
from .topk import LayerExtremes


def _versions() -> dict[str, str]:
    return {"phosphene": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pillow": PIL.__version__, "pyarrow": pyarrow.__version__,
            "python": sys.version.split()[0], "platform": platform.platform()}


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


def _check_used(out: Path, manifest: dict) -> None:
    summary = manifest.get("summary", {})
    if summary.get("n_used", 1) == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in summary.get("skipped_by_reason", {}).items())
        raise PhospheneError(f"none of the {summary.get('n_images')} images could be used "
                             f"({reasons}); see {out / store.SKIPPED}")


def run_mining(model: nn.Module | str, layers: Sequence[str], images: str | os.PathLike,
               out: str | os.PathLike, plan: MiningPlan | None = None, *,
               device: str | torch.device | None = None, progress: bool | None = None,
               executor: ShardExecutor | None = None, **overrides: Any) -> MiningRun:
    """Mine the top-k / bottom-k images of every unit of ``layers`` over the folder ``images``.

    ``model`` is an `ImageModel` (or a registered name). ``plan`` (a `MiningPlan`: k, batch_size,
    num_workers, size, crop_fraction, min_side, max_pixels, max_aspect, checkpoint_every,
    checkpoint_seconds, fold) holds the settings; its fields can be given as keywords
    (``run_mining(model, layers, images, out, k=16, batch_size=64)``). Writes the run folder ``out``
    (see `phosphene.mining.store`) and returns it opened. Rerunning with the same arguments resumes an
    interrupted run (or returns a finished one); other arguments on an existing run raise
    `PhospheneError`; a second run on the same ``out`` at the same time is refused (a lock file).
    ``executor`` (e.g. `phosphene.distributed.RayExecutor`) mines fixed shards of the image list on
    its workers instead (`phosphene.mining.sharded`): the same tables. ``fold`` folds the BatchNorm
    layers not mined into their convolutions for the run (`fold_batchnorm`; a model in training
    mode is left as it is).
    """
    plan = with_overrides(MiningPlan, plan, overrides, "run_mining")
    job = prepare(model, layers, images, out, plan, device)
    out = job.out
    with run_lock(out):
        remove_stale_temporaries(out)  # half-written files of a killed run (the lock is ours)
        with writing(out):
            status = _open_or_create(out, job.config, job.shapes, job.relative, job.unlisted)
        if status != "complete":
            if executor is not None:
                with writing(out):
                    mine_sharded(job, executor, progress)
            else:
                _mine_here(job, progress)
    _check_used(out, store.read_json(out / store.MANIFEST))
    return MiningRun(out)


def _mine_here(job: MiningJob, progress: bool | None) -> None:
    """The single-process loop: resume from the checkpoint, stream the rest, write the tables."""
    model, device, layers, paths, prep, out = (job.model, job.device, job.layers, job.paths,
                                               job.prep, job.out)
    batch_size, plan = job.batch_size, job.plan
    num_workers, checkpoint_every, checkpoint_seconds = (plan.num_workers, plan.checkpoint_every,
                                                         plan.checkpoint_seconds)
    channels_last = resolve_channels_last(None, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with memory_format(model, channels_last), fold_batchnorm(model, layers, prep.size, device, job.fold), \
            LayerTap(model, layers, truncate=True) as tap:
        extremes, processed, skipped = _resume(out, layers, job.shapes, job.k, device)
        start_time = time.perf_counter()
        loader = batch_loader(paths, prep, batch_size, start=processed, num_workers=num_workers,
                              pin_memory=device.type == "cuda")
        bar = progress_bar(total=-(-len(paths) // batch_size), initial=processed // batch_size,
                           unit="batch", desc="mining", progress=progress)
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
                    with writing(out):
                        store.save_checkpoint(out, processed, store.states_of(extremes), skipped)
                    last_save, since_save = time.monotonic(), 0
        with writing(out):
            store.save_checkpoint(out, processed, store.states_of(extremes), skipped)
            store.finish_run(out, store.states_of(extremes), job.shapes, job.relative, skipped,
                             time.perf_counter() - start_time)


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
