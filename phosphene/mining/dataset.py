"""Streaming an image folder: decoding in worker processes, bad files skipped with a reason.

Every file becomes either a (3, S, S) uint8 centre crop or a reason why it was skipped; nothing
raises. What is converted and what is skipped:

- converted (used): grayscale (L), CMYK (PIL's conversion, Adobe-inverted JPEGs included), palette
  and any mode with transparency (composited over white), 16-bit PNG (I;16/I scaled from 0..65535 to
  8 bit), YCbCr/LAB/HSV, multi-frame files (first frame);
- skipped: empty (zero-byte) files, files that are not images (unidentified), truncated or corrupt
  data, images smaller than ``min_side`` pixels on a side (a 1x1 image carries no picture, only a
  colour), images larger than ``max_pixels`` (decompression bombs, and images too big to decode
  cheaply), images more than ``max_aspect`` times longer than wide (or the reverse).

Decoding is `phosphene.decoding.read_rgb` (EXIF orientation; truncated JPEGs decoded as far as their
data goes). Preprocessing of the kept images: the central square that "short side to
``size / crop_fraction``, centre crop ``size``" keeps is cut from the source and resized to ``size``
(bicubic), so the work does not grow with the aspect ratio.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io.decoding import (  # noqa: F401  (defaults re-exported for run.py)
    DEFAULT_MAX_ASPECT,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    ImageDecodeError,
    read_rgb,
)

SkipImage = ImageDecodeError  # an image file that cannot be used; ``str(exc)`` is the reason


@dataclass(frozen=True)
class Preprocessing:
    """How files become model inputs; recorded in the manifest of a mining run."""

    size: int = 224
    crop_fraction: float = 0.875
    min_side: int = DEFAULT_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect: float = DEFAULT_MAX_ASPECT

    def describe(self) -> dict:
        return {
            "size": self.size, "crop_fraction": self.crop_fraction, "min_side": self.min_side,
            "max_pixels": self.max_pixels, "max_aspect": self.max_aspect,
            "steps": f"first frame; EXIF orientation; to RGB (alpha over white, 16-bit scaled to "
                     f"8-bit); central square of side {self.crop_fraction} x short side -> "
                     f"{self.size} bicubic (= short side to round({self.size}/{self.crop_fraction}), "
                     f"centre crop {self.size}); /255 to [0,1]; the model applies its own "
                     f"normalization",
        }


def decode_image(path: str | os.PathLike, prep: Preprocessing) -> np.ndarray:
    """Read ``path`` as a (3, size, size) uint8 array; raise `SkipImage` with the reason if unusable."""
    crop = read_rgb(path, prep.size, prep.crop_fraction, prep.min_side, prep.max_pixels,
                    prep.max_aspect)
    return np.ascontiguousarray(np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1))


class ImageFiles(torch.utils.data.Dataset):
    """Item i -> (i, (3, S, S) uint8 tensor or None, skip reason or None)."""

    def __init__(self, paths: Sequence[str | os.PathLike], prep: Preprocessing):
        self.paths = [str(p) for p in paths]
        self.prep = prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, torch.from_numpy(decode_image(self.paths[index], self.prep)), None
        except SkipImage as exc:
            return index, None, str(exc)
        except Exception as exc:  # never let one file stop the run
            return index, None, f"unreadable ({type(exc).__name__}: {str(exc)[:80]})"


@dataclass
class Batch:
    """A decoded batch: ``images`` (n, 3, S, S) uint8 of the good files, their dataset ``indices``
    (n,), and ``skipped`` [(index, reason)] for the bad ones."""

    indices: torch.Tensor
    images: torch.Tensor
    skipped: list[tuple[int, str]]


def collate(items) -> Batch:
    good = [(i, x) for i, x, _ in items if x is not None]
    skipped = [(i, r) for i, x, r in items if x is None]
    if good:
        indices = torch.tensor([i for i, _ in good], dtype=torch.int64)
        images = torch.stack([x for _, x in good])
    else:
        indices, images = torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3, 1, 1, dtype=torch.uint8)
    return Batch(indices, images, skipped)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def batch_loader(paths: Sequence[str | os.PathLike], prep: Preprocessing, batch_size: int,
                 start: int = 0, num_workers: int = 2, pin_memory: bool = False):
    """Batches of files ``start, start+1, ...`` in order; batch b holds files
    ``[start + b*batch_size, start + (b+1)*batch_size)`` (so batches are the same after a resume
    from a multiple of ``batch_size``)."""
    dataset = ImageFiles(paths, prep)
    ranges = [list(range(s, min(s + batch_size, len(paths)))) for s in range(start, len(paths),
                                                                            batch_size)]
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=ranges, num_workers=num_workers, collate_fn=collate,
        worker_init_fn=_worker_init if num_workers else None, pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None, persistent_workers=False)


def list_hash(root: Path, paths: Sequence[Path]) -> str:
    """SHA-256 over the relative paths and sizes of ``paths``: identifies an image list."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        digest.update(os.fsencode(path.relative_to(root).as_posix()) + f"\t{size}\n".encode())
    return digest.hexdigest()
