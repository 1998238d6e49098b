"""Rendering many units (a whole layer) in fixed batches, in this process or on Ray workers.

Batch b renders ``units[b * chunk:(b + 1) * chunk]`` (each unit ``per_unit`` times) in one
optimization seeded with ``seed + b``; batch 0 is exactly ``phosphene render`` of its units with
``--seed``. Each batch's outputs (a PNG per image, grid.png, render.json as `RenderResult.save`)
are written into a temporary folder that is then renamed to ``OUT/batch_BBBB``, so a batch folder is
either complete or absent; a rerun renders only the missing batches. ``OUT/render.json`` indexes the
batches once all are done. With an executor (`phosphene.distributed.RayExecutor`) workers render
the batches and send the results back; the driver writes them, so the folders equal a local run's
when the workers compute with the same device and threads.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import objectives as obj
from ..errors import PhospheneError, UnitOutOfRangeError
from ..io.images import atomic_write_bytes
from ..io.progress import progress_bar
from ..layers.names import check_layers
from ..layers.tap import LayerTap
from ..models.wrapper import as_image_model
from ..render import RenderConfig, RenderResult, render
from ..settings import with_overrides

KINDS = ("channel", "neuron")
RENDER_KEYWORDS = ("param", "transforms", "optimizer", "param_options", "output_key")  # besides config


@dataclass(frozen=True)
class UnitBatch:
    """Batch ``index``: ``units`` rendered together with ``seed``."""

    index: int
    units: tuple[int, ...]
    seed: int

    @property
    def folder(self) -> str:
        return f"batch_{self.index:04d}"


def plan_batches(units: Sequence[int], chunk: int, seed: int = 0) -> list[UnitBatch]:
    """Fixed batches of ``chunk`` units; batch b gets seed ``seed + b``."""
    if chunk < 1:
        raise PhospheneError("--chunk must be at least 1")
    return [UnitBatch(b, tuple(units[start:start + chunk]), seed + b)
            for b, start in enumerate(range(0, len(units), chunk))]


def layer_units(model: nn.Module, layer: str, size: int | None = None) -> int:
    """Number of units (channels) of ``layer``."""
    model = as_image_model(model)
    check_layers(model, [layer])
    side = size or model.input_size
    with LayerTap(model, [layer]) as tap, torch.no_grad():
        return int(tap(torch.full((1, 3, side, side), 0.5, device=model.device))[layer].shape[1])


@dataclass
class BatchRenderer:
    """The job a worker runs: render one `UnitBatch` of ``layer`` with ``config`` (its seed replaced by
    the batch's) and the `render` keywords in ``options`` (param, transforms, ...)."""

    model: nn.Module
    layer: str
    kind: str = "channel"
    per_unit: int = 1
    diversity: float = 0.0
    config: RenderConfig = field(default_factory=RenderConfig)
    options: dict[str, Any] = field(default_factory=dict)

    def setup(self, device: torch.device) -> torch.device:
        self.model.to(device).eval()
        return device

    def run(self, device: torch.device, batch: UnitBatch) -> RenderResult:
        units = [u for u in batch.units for _ in range(self.per_unit)]
        objective = getattr(obj, self.kind)(self.layer, units)
        if self.diversity:
            objective = objective + self.diversity * obj.diversity(self.layer)
        config = replace(self.config, batch=len(units), seed=batch.seed)
        return render(self.model, objective, config, device=device, progress=False, **self.options)


_TEMPORARY = re.compile(r"^\.batch_\d+\.tmp-(\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead_temporaries(out: Path) -> list[str]:
    """Delete the half-written batch folders (``.batch_BBBB.tmp-PID``) of processes that no longer
    run (a killed render); those of running processes stay. The names removed."""
    removed = []
    for entry in list(os.scandir(out)):
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not _alive(int(match[1])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


def save_batch(out: Path, batch: UnitBatch, result: RenderResult, per_unit: int) -> None:
    """Write a batch's outputs into a temporary folder, then rename it to ``out/batch_BBBB``."""
    final = out / batch.folder
    tmp = out / f".{batch.folder}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    result.save(tmp, columns=per_unit if per_unit > 1 else None)
    if final.exists():  # rendered meanwhile by an earlier, interrupted run's survivor: keep it
        shutil.rmtree(tmp)
        return
    os.replace(tmp, final)


def render_batches(model: nn.Module, layer: str, units: Sequence[int] | None, out: str | os.PathLike,
                   chunk: int = 16, kind: str = "channel", per_unit: int = 1, diversity: float = 0.0,
                   config: RenderConfig | None = None, *, executor: Any | None = None,
                   progress: bool | None = None, **options: Any) -> dict:
    """Render ``units`` of ``layer`` (None: all) in batches of ``chunk`` into ``out``; resumable.

    ``config`` (a `RenderConfig`; batch b is rendered with seed ``config.seed + b``) and ``options``
    (`render`'s keywords: param, transforms, ..., and `RenderConfig` fields such as steps, size,
    seed) set each batch's render. Returns the index written to ``out/render.json``.
    """
    model = as_image_model(model)
    keywords = {k: options.pop(k) for k in RENDER_KEYWORDS if k in options}
    config = with_overrides(RenderConfig, config, options, "render_batches")
    seed = config.seed
    if kind not in KINDS:
        raise PhospheneError(f"batched rendering supports the objectives {KINDS}, not {kind!r}")
    count = layer_units(model, layer, config.size)
    units = list(range(count)) if units is None else list(units)
    if not units:
        raise PhospheneError("no units to render")
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise UnitOutOfRangeError(f"unit {bad[0]} out of range: {layer} has {count} units")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PhospheneError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(out)
    batches = plan_batches(units, chunk, seed)
    todo = [b for b in batches if not (out / b.folder).is_dir()]
    job_model = model if model.device.type == "cpu" else copy.deepcopy(model).cpu()
    job = BatchRenderer(job_model if executor else model, layer, kind, per_unit, diversity, config, keywords)
    with progress_bar(total=len(batches), initial=len(batches) - len(todo), unit="batch", desc="render",
                      progress=progress) as bar:
        def on_result(batch: UnitBatch, result: RenderResult) -> None:
            save_batch(out, batch, result, per_unit)
            bar.update(1)

        _run(job, todo, on_result, executor)
    index = {"layer": layer, "kind": kind, "chunk": chunk, "per_unit": per_unit, "seed": seed,
             "diversity": diversity, "units": units,
             "batches": [{"index": b.index, "folder": b.folder, "units": list(b.units), "seed": b.seed}
                         for b in batches]}
    atomic_write_bytes(out / "render.json", json.dumps(index, indent=2).encode())
    return index


def _run(job: BatchRenderer, todo: list[UnitBatch], on_result: Callable, executor: Any | None) -> None:
    if executor is not None:
        executor.map(job, todo, on_result)
        return
    context = job.setup(job.model.device)
    for batch in todo:
        on_result(batch, job.run(context, batch))
