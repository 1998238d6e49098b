"""Image sources: the images of a mining run (with its preprocessing) or of a plain image folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import PhospheneError
from ..io.images import list_images
from ..models.preprocess import spec_for
from ..models.wrapper import as_image_model
from . import store
from .dataset import Preprocessing, batch_loader
from .reader import MiningRun


def image_source(source: str | os.PathLike) -> tuple[list[Path], Path, Preprocessing | None, str | None]:
    """(paths, root, preprocessing of a run or None, model name of a run or None) for a mining run
    folder or an image folder."""

    source = Path(source)
    if (source / store.MANIFEST).is_file():
        run = MiningRun(source)
        return run.image_paths(), run.image_root, run.preprocessing, run.model_name
    if not source.is_dir():
        raise PhospheneError(f"not a mining run or image folder: {source}")
    paths = list_images(source)
    if not paths:
        raise PhospheneError(f"no images (jpg, png, webp, bmp) under {source}")
    return paths, source, None, None


@dataclass
class ImageSource:
    """Decoded images of a mining run or an image folder: (N, 3, S, S) in [0, 1] and their paths."""

    images: torch.Tensor
    paths: list[Path]
    skipped: int


def load_source(source: str | os.PathLike, model: nn.Module, size: int | None = None,
                batch_size: int = 32, num_workers: int = 2) -> ImageSource:
    """Decode every readable image of a mining run (with its preprocessing) or of an image folder;
    unreadable files are skipped and counted."""
    paths, _root, prep, _model_name = image_source(source)
    if prep is None or size is not None:
        prep = Preprocessing(as_image_model(model).side(size), spec_for(model).crop_fraction)
    images, kept, skipped = [], [], 0
    for batch in batch_loader(paths, prep, batch_size, num_workers=num_workers):
        skipped += len(batch.skipped)
        if len(batch.indices):
            images.append(batch.images.float().div_(255))
            kept.extend(paths[i] for i in batch.indices.tolist())
    if not images:
        raise PhospheneError(f"none of the {len(paths)} files of {source} could be read")
    return ImageSource(torch.cat(images), kept, skipped)
