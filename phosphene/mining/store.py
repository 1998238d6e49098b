"""The files of a mining run folder, each written atomically (temporary file + ``os.replace``).

- ``manifest.json``: model, layers (with output shapes), k, preprocessing, image root, image-list
  hash and count, versions, ``status`` (``running`` / ``complete``) and, once complete, a summary;
- ``images.parquet``: ``index``, ``path`` (relative to the image root; bytes that are not UTF-8
  written as ``\\xNN``) and ``path_bytes`` (the exact name) of every listed file;
- ``checkpoint.pt``: running top-k state, number of files processed, skipped files so far;
- ``topk.parquet``: one row per (layer, unit, stat, direction, rank): ``image_index``, ``path``,
  ``value``, ``y``, ``x`` (-1 for the channel mean, which has no position);
- ``skipped.csv``: ``index``, ``path``, ``reason`` of every file that could not be used (and, with
  index -1, every subfolder that could not be listed).

Durability: each file is fsynced before its rename and the folder after it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ..io.images import atomic_write_bytes, display_path

MANIFEST = "manifest.json"
IMAGES = "images.parquet"
CHECKPOINT = "checkpoint.pt"
TOPK = "topk.parquet"
SKIPPED = "skipped.csv"


def write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_image_list(run: Path, relative_paths: list[str]) -> None:
    """``index``, ``path`` (printable; undecodable bytes as ``\\xNN``) and ``path_bytes`` (exact)."""
    table = pa.table({"index": pa.array(np.arange(len(relative_paths)), pa.int64()),
                      "path": pa.array([display_path(p) for p in relative_paths], pa.string()),
                      "path_bytes": pa.array([os.fsencode(p) for p in relative_paths], pa.binary())})
    write_parquet(run / IMAGES, table)


def read_image_list(run: Path) -> list[str]:
    """The relative paths by index, exactly as on disk (runs before ``path_bytes``: ``path``)."""
    table = pq.read_table(run / IMAGES)
    if "path_bytes" in table.column_names:
        return [os.fsdecode(b) for b in table.column("path_bytes").to_pylist()]
    return table.column("path").to_pylist()


def save_checkpoint(run: Path, processed: int, state: dict, skipped: list[tuple[int, str]]) -> None:
    """Atomically store the running state after ``processed`` files."""
    buffer = io.BytesIO()
    torch.save({"processed": processed, "state": state, "skipped": skipped}, buffer)
    atomic_write_bytes(run / CHECKPOINT, buffer.getvalue())


def load_checkpoint(run: Path) -> dict | None:
    path = run / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def topk_table(states: dict[str, dict[str, dict[str, torch.Tensor]]], widths: dict[str, int],
               relative_paths: list[str]) -> pa.Table:
    """Flatten {layer: {"stat/direction": {values, index, pos} (C, k)}} into one Arrow table."""
    columns: dict[str, list[np.ndarray]] = {n: [] for n in
                                            ("layer", "unit", "stat", "direction", "rank", "image_index",
                                             "value", "y", "x")}
    for layer, rankings in states.items():
        for key, state in rankings.items():
            stat, direction = key.split("/")
            values, index, pos = (state[n].cpu().numpy() for n in ("values", "index", "pos"))
            channels, k = values.shape
            count = channels * k
            width = widths[layer]
            pos = pos.reshape(-1)
            columns["layer"].append(np.full(count, layer, dtype=object))
            columns["unit"].append(np.repeat(np.arange(channels, dtype=np.int32), k))
            columns["stat"].append(np.full(count, stat, dtype=object))
            columns["direction"].append(np.full(count, direction, dtype=object))
            columns["rank"].append(np.tile(np.arange(k, dtype=np.int32), channels))
            columns["image_index"].append(index.reshape(-1).astype(np.int64))
            columns["value"].append(values.reshape(-1).astype(np.float32))
            columns["y"].append(np.where(pos >= 0, pos // width, -1).astype(np.int32))
            columns["x"].append(np.where(pos >= 0, pos % width, -1).astype(np.int32))
    arrays = {n: np.concatenate(v) if v else np.zeros(0) for n, v in columns.items()}
    paths = np.asarray([display_path(p) for p in relative_paths], dtype=object)
    arrays["path"] = paths[arrays["image_index"].astype(np.int64)] if len(paths) else arrays["layer"]
    types = {"layer": pa.string(), "unit": pa.int32(), "stat": pa.string(), "direction": pa.string(),
             "rank": pa.int32(), "image_index": pa.int64(), "path": pa.string(), "value": pa.float32(),
             "y": pa.int32(), "x": pa.int32()}
    return pa.table({n: pa.array(arrays[n], t) for n, t in types.items()})


def write_skipped(run: Path, skipped: list[tuple[int, str]], relative_paths: list[str],
                  unlisted: list[tuple[str, str]] = ()) -> None:
    """``skipped.csv``: skipped files by index, then (index -1) folders that could not be listed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "path", "reason"])
    for index, reason in sorted(skipped):
        writer.writerow([index, display_path(relative_paths[index]), reason])
    for path, reason in unlisted:
        writer.writerow([-1, display_path(path), reason])
    atomic_write_bytes(run / SKIPPED, buffer.getvalue().encode())


def read_skipped(run: Path) -> list[tuple[int, str, str]]:
    path = run / SKIPPED
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [(int(r["index"]), r["path"], r["reason"]) for r in csv.DictReader(handle)]


def states_of(extremes: dict) -> dict:
    """The state of every layer's `LayerExtremes`, as checkpoints and `finish_run` store them."""
    return {name: e.state() for name, e in extremes.items()}


def finish_run(out: Path, states: dict, shapes: dict, relative: list[str],
               skipped: list[tuple[int, str]], seconds: float) -> dict:
    """Write the top-k tables from the layers' ``states`` (`states_of`), then mark the manifest
    complete (last, so a kill before it only redoes this)."""
    widths = {name: (shape[2] if len(shape) == 3 else 1) for name, shape in shapes.items()}
    write_parquet(out / TOPK, topk_table(states, widths, relative))
    manifest = read_json(out / MANIFEST)
    write_skipped(out, skipped, relative, [tuple(u) for u in manifest.get("unlisted", [])])
    reasons = Counter(reason.split(" (")[0] for _, reason in skipped)
    manifest.update(status="complete", summary={
        "n_images": len(relative), "n_used": len(relative) - len(skipped), "n_skipped": len(skipped),
        "skipped_by_reason": dict(sorted(reasons.items())), "seconds_last_session": round(seconds, 2),
    })
    write_json(out / MANIFEST, manifest)
    return manifest
