"""Sharded mining: fixed shards of the image list, mined by workers, merged on the driver.

Shard s holds the files ``[s * B * n, (s + 1) * B * n)`` of the sorted list (B = batch size, n =
``shard_batches``), so its batches are exactly the batches of a single-process run. A worker (a
`ShardMiner` on a Ray actor, see `phosphene.distributed`) mines a shard into its own top/bottom-k
state; the driver merges each arriving state into the running one with the same total order as
`phosphene.mining.topk` (value, then smaller image index). That order makes the merge associative and
commutative: in whatever order shards finish, the tables equal a single-process run's, byte for byte.

Resume: ``shards.pt`` in the run folder holds the merged state, the finished shard numbers and the
skipped files, written together atomically (every ``checkpoint_every`` batches' worth of shards and at
least every ``checkpoint_seconds``). A killed driver reruns only the shards not in it; a shard is
merged once or not at all. A resumed run keeps the shard size it started with.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..io.images import atomic_write_bytes
from ..io.progress import progress_bar
from ..layers.folding import fold_batchnorm
from ..layers.model_state import resolve_channels_last
from ..layers.tap import LayerTap
from . import store
from .dataset import Preprocessing, batch_loader
from .plan import MiningJob
from .reader import MiningRun
from .topk import LayerExtremes, RunningExtremes

SHARDS = "shards.pt"


class ShardExecutor(Protocol):
    """Runs a job's tasks somewhere (`phosphene.distributed.RayExecutor`)."""

    shard_batches: int

    def map(self, job: Any, tasks: Sequence[Any], on_result: Callable[[Any, Any], None]) -> None: ...


@dataclass(frozen=True)
class ShardTask:
    """Files ``start .. stop - 1`` of the run (their paths, relative to the image root, travel with
    the task)."""

    index: int
    start: int
    stop: int
    paths: tuple[str, ...]


def plan_shards(relative: Sequence[str], batch_size: int, shard_batches: int) -> list[ShardTask]:
    """The run's fixed shards: ``shard_batches`` whole batches each (the last may be shorter)."""
    size = batch_size * shard_batches
    return [ShardTask(i, start, min(start + size, len(relative)),
                      tuple(relative[start:start + size]))
            for i, start in enumerate(range(0, len(relative), size))]


@dataclass
class ShardMiner:
    """The job a worker runs: mine one shard into per-layer top/bottom-k states. ``root``: the
    image folder, at the same absolute path on every node."""

    model: nn.Module
    root: str
    layers: list[str]
    prep: Preprocessing
    batch_size: int
    k: int
    channels: dict[str, int]
    num_workers: int = 0
    fold: bool = True

    def setup(self, device: torch.device) -> tuple[LayerTap, torch.device]:
        model = self.model.to(device).eval()
        self._format = (torch.channels_last if resolve_channels_last(None, device)
                        else torch.contiguous_format)  # as the single-process run does
        if self.fold or self._format == torch.channels_last:  # on a copy that stays so for the worker
            model = copy.deepcopy(model).to(memory_format=self._format)
            self._folded = contextlib.ExitStack()
            self._folded.enter_context(fold_batchnorm(model, self.layers, self.prep.size, device, self.fold))
        return LayerTap(model, self.layers, truncate=True), device  # hooks stay on

    def run(self, context: tuple[LayerTap, torch.device], task: ShardTask) -> dict:
        tap, device = context
        extremes = {name: LayerExtremes(self.channels[name], self.k, device) for name in self.layers}
        skipped: list[tuple[int, str]] = []
        paths = [os.path.join(self.root, p) for p in task.paths]
        loader = batch_loader(paths, self.prep, self.batch_size, num_workers=self.num_workers,
                              pin_memory=device.type == "cuda")
        with torch.inference_mode():
            for batch in loader:
                skipped.extend((task.start + i, reason) for i, reason in batch.skipped)
                if len(batch.indices):
                    images = batch.images.to(device, non_blocking=True).float().div_(255)
                    acts = tap(images.contiguous(memory_format=self._format))
                    index = (batch.indices + task.start).to(device, non_blocking=True)
                    for name in self.layers:
                        extremes[name].update(acts[name], index)
        return {"state": {name: e.state() for name, e in extremes.items()}, "skipped": skipped}


def merge_ranking(ranking: RunningExtremes, state: dict[str, torch.Tensor]) -> None:
    """Merge another state of the same ranking into ``ranking``, in `RunningExtremes.update`'s order."""
    device = ranking.values.device
    values, index, pos = (torch.cat([getattr(ranking, n), state[n].to(device)], dim=1)
                          for n in ("values", "index", "pos"))
    order = index.argsort(dim=1, stable=True)
    values, index, pos = (t.gather(1, order) for t in (values, index, pos))
    order = values.argsort(dim=1, descending=ranking.largest, stable=True)[:, : ranking.k]
    ranking.values, ranking.index, ranking.pos = (t.gather(1, order) for t in (values, index, pos))


def merge_states(extremes: dict[str, LayerExtremes], states: dict[str, dict]) -> None:
    """Merge a shard's ``{layer: LayerExtremes.state()}`` into the running ``extremes``."""
    for name, layer in extremes.items():
        for (stat, direction), ranking in layer.rankings.items():
            merge_ranking(ranking, states[name][f"{stat}/{direction}"])


def save_shards(run: Path, shard_batches: int, finished: set[int], extremes: dict[str, LayerExtremes],
                skipped: list[tuple[int, str]]) -> None:
    """Atomically store the merged state with the shards it contains."""
    buffer = io.BytesIO()
    torch.save({"shard_batches": shard_batches, "finished": sorted(finished),
                "state": {name: e.state() for name, e in extremes.items()}, "skipped": skipped}, buffer)
    atomic_write_bytes(run / SHARDS, buffer.getvalue())


def load_shards(run: Path) -> dict | None:
    path = run / SHARDS
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def mine_sharded(job: MiningJob, executor: ShardExecutor, progress: bool | None = None) -> MiningRun:
    """Mine ``job`` (a `MiningJob` whose run folder exists) on ``executor``; its plan's
    ``num_workers`` are decoding processes per worker, ``checkpoint_every`` / ``checkpoint_seconds``
    pace the driver's saves."""
    num_workers = job.plan.num_workers
    checkpoint_every, checkpoint_seconds = job.plan.checkpoint_every, job.plan.checkpoint_seconds
    channels = {name: job.shapes[name][0] for name in job.layers}
    extremes = {name: LayerExtremes(c, job.k, job.device) for name, c in channels.items()}
    saved = load_shards(job.out)
    shard_batches = saved["shard_batches"] if saved else executor.shard_batches
    finished: set[int] = set(saved["finished"]) if saved else set()
    skipped = [tuple(s) for s in saved["skipped"]] if saved else []
    if saved:
        for name in job.layers:
            extremes[name].load(saved["state"][name])
    shards = plan_shards(job.relative, job.batch_size, shard_batches)
    model = job.model if job.device.type == "cpu" else copy.deepcopy(job.model).cpu()
    miner = ShardMiner(model, job.config["image_root"], job.layers, job.prep, job.batch_size, job.k,
                       channels, num_workers, job.fold)
    started = time.perf_counter()
    last_save, since_save = time.monotonic(), 0
    bar = progress_bar(total=len(shards), initial=len(finished), unit="shard", desc="mining",
                       progress=progress)

    def on_result(task: ShardTask, result: dict) -> None:
        nonlocal last_save, since_save
        if task.index in finished:
            return
        merge_states(extremes, result["state"])
        skipped.extend(tuple(s) for s in result["skipped"])
        finished.add(task.index)
        since_save += shard_batches
        bar.update(1)
        if since_save >= checkpoint_every or time.monotonic() - last_save >= checkpoint_seconds:
            save_shards(job.out, shard_batches, finished, extremes, skipped)
            last_save, since_save = time.monotonic(), 0

    with bar:
        executor.map(miner, [s for s in shards if s.index not in finished], on_result)
    save_shards(job.out, shard_batches, finished, extremes, skipped)
    store.finish_run(job.out, store.states_of(extremes), job.shapes, job.relative, skipped,
                     time.perf_counter() - started)
    return MiningRun(job.out)
