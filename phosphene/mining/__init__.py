"""Dataset examples: per-unit top-k / bottom-k images over an image folder (resumable).

    run = phosphene.mining.run_mining(model, ["_blocks.8"], "images/", "runs/b8", k=16)
    run = phosphene.mining.open("runs/b8")
    run.top("_blocks.8", 3, k=8)             # [Example(index, path, value, y, x, ...)], best first
    run.bottom("_blocks.8", 3, by="min")     # smallest spatial minimum, with its position
    run.load(run.top("_blocks.8", 3))        # (8, 3, S, S) images preprocessed as in the run
    run.table()                              # the whole Parquet table (pyarrow)

Modules: `dataset` (decoding in worker processes, bad files skipped with a reason), `topk` (running
top/bottom-k merged on the device), `store` (Parquet tables, manifest, atomic checkpoints), `run`
(the mining loop), `plan` (`MiningPlan`, the settings), `reader` (`MiningRun`).
"""

from __future__ import annotations

import os

from .dataset import Preprocessing, SkipImage, decode_image
from .plan import MiningPlan
from .reader import Example, MiningRun
from .run import run_mining
from .topk import DIRECTIONS, STATS


def open(run: str | os.PathLike) -> MiningRun:  # noqa: A001  (phosphene.mining.open, like io.open)
    """Open the finished mining run folder ``run``."""
    return MiningRun(run)


__all__ = ["DIRECTIONS", "Example", "MiningPlan", "MiningRun", "Preprocessing", "STATS", "SkipImage",
           "decode_image", "open", "run_mining"]
