"""Reading, writing and tiling images. Tensors are (3, H, W) or (N, 3, H, W) floats in [0, 1]."""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image (any mode) to a (3, H, W) float tensor in [0, 1]."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float32)
        array = array / max(float(array.max()), 1.0) if image.mode != "I" else array / 65535.0
        array = np.repeat(np.clip(array, 0, 1)[..., None], 3, axis=2)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if image.mode in ("P", "PA", "LA", "RGBA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()


def resize_center_crop(image: Image.Image, size: int, crop_fraction: float = 0.875) -> Image.Image:
    """Resize the short side to ``size / crop_fraction`` and cut the central ``size`` square."""
    short = round(size / crop_fraction)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                         Image.Resampling.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_image(path: str | os.PathLike, size: int | None = None,
               crop_fraction: float = 0.875) -> torch.Tensor:
    """Read an image file as (3, H, W) in [0, 1]; with ``size``, resized and centre-cropped."""
    with Image.open(path) as image:
        image.load()
        if size is not None:
            image = resize_center_crop(image.convert("RGB") if image.mode not in ("RGB", "L")
                                       else image, size, crop_fraction)
        return pil_to_tensor(image)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] to an (H, W, 3) uint8 array."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(
        np.uint8)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> None:
    """Save a (3, H, W) tensor in [0, 1] (or a PIL image) as PNG, atomically."""
    import io

    pil = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


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
    note_lines = textwrap.wrap(note, max(8, (columns * (w + padding) - padding) // 6)) if note else []
    extra = len(note_lines) * label_height + padding if note else 0
    canvas = Image.new("RGB", (columns * (w + padding) + padding,
                               rows * (cell_h + padding) + padding + extra), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        x, y = padding + c * (w + padding), padding + r * (cell_h + padding)
        canvas.paste(Image.fromarray(to_uint8(img)), (x, y))
        if labels:
            draw.text((x + 2, y + h + 1), str(labels[i])[: max(4, w // 6)], fill=(0, 0, 0), font=font)
    for i, line in enumerate(note_lines):
        draw.text((padding + 2, canvas.size[1] - extra + i * label_height), line, fill=(90, 90, 90),
                  font=font)
    return canvas
