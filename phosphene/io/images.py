"""Reading, writing and tiling images. Tensors are (3, H, W) or (N, 3, H, W) floats in [0, 1]."""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .decoding import (  # noqa: F401  (IMAGE_SUFFIXES re-exported)
    DEFAULT_MAX_ASPECT,
    IMAGE_SUFFIXES,
    ImageDecodeError,
    crop_box,
    display_path,
    read_rgb,
    scan_images,
    to_rgb,
)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image (any mode) to a (3, H, W) float tensor in [0, 1] (`decoding.to_rgb` conversion)."""
    rgb = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def resize_center_crop(image: Image.Image, size: int, crop_fraction: float = 0.875) -> Image.Image:
    """Resize the short side to ``size / crop_fraction`` and cut the central ``size`` square
    (the crop is cut from the source first, so the work does not grow with the aspect ratio)."""
    return image.resize((size, size), Image.Resampling.BICUBIC,
                        box=crop_box(*image.size, crop_fraction), reducing_gap=3.0)


def load_image(path: str | os.PathLike, size: int | None = None,
               crop_fraction: float = 0.875) -> torch.Tensor:
    """Read an image file as (3, H, W) in [0, 1]; with ``size``, resized and centre-cropped.

    Decoded by `phosphene.decoding.read_rgb` (EXIF orientation, first frame, bounded work); a bad
    file raises `ImageDecodeError` naming the file and the reason.
    """
    try:
        return pil_to_tensor(read_rgb(path, size, crop_fraction,
                                      max_aspect=DEFAULT_MAX_ASPECT if size else math.inf))
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"cannot read image {display_path(path)}: {exc}") from None


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted; see `decoding.IMAGE_SUFFIXES`."""
    return scan_images(folder)[0]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] to an (H, W, 3) uint8 array; (1, H, W) (grayscale) to (H, W);
    (4, H, W) (RGBA) to (H, W, 4)."""
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(
        np.uint8)
    return array[..., 0] if array.shape[-1] == 1 else array


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, never half-written.

    The file is fsynced before the rename and the folder after it, so once this returns the new
    content survives a power cut; its permissions follow the umask (like ``open``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}$")  # ".NAME." + tempfile's 8 random characters


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files `atomic_write_bytes` leaves in ``folder`` when its process is
    killed mid-write (``.NAME.XXXXXXXX``); the names removed. Call it only while no other process
    writes there (e.g. holding the folder's run lock)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> None:
    """Save a (3, H, W) tensor in [0, 1] (or a PIL image) as PNG, atomically; a (1, H, W) tensor
    (a grayscale model's image) as a grayscale PNG, a (4, H, W) one (colour and opacity) as RGBA."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def wrap_note(note: str, chars: int) -> list[str]:
    """A grid's note in lines of at most ``chars`` (>= 8) characters, broken at spaces only (never
    inside a hyphenated word such as "un-transformed")."""
    return textwrap.wrap(note, max(8, chars), break_on_hyphens=False, break_long_words=False)


def image_grid(images: torch.Tensor | Sequence[torch.Tensor], labels: Sequence[str] | None = None,
               columns: int | None = None, padding: int = 4, label_height: int = 14,
               note: str | None = None) -> Image.Image:
    """Tile (N, 3, H, W) images into one PIL image, with an optional caption under each and an
    optional ``note`` line at the bottom (what the captions mean)."""
    images = [img for img in images]
    n = len(images)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    h, w = images[0].shape[-2:]
    cell_h = h + (label_height if labels else 0)
    note_lines = wrap_note(note, (columns * (w + padding) - padding) // 6) if note else []
    extra = len(note_lines) * label_height + padding if note else 0
    canvas = Image.new("RGB", (columns * (w + padding) + padding,
                               rows * (cell_h + padding) + padding + extra), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        x, y = padding + c * (w + padding), padding + r * (cell_h + padding)
        canvas.paste(Image.fromarray(to_uint8(img)).convert("RGB"), (x, y))
        if labels:
            draw.text((x + 2, y + h + 1), str(labels[i])[: max(4, w // 6)], fill=(0, 0, 0), font=font)
    for i, line in enumerate(note_lines):
        draw.text((padding + 2, canvas.size[1] - extra + i * label_height), line, fill=(90, 90, 90),
                  font=font)
    return canvas
