"""The one image decoder shared by `load_image`, mining and the CLI, with bounded work.

`read_rgb` opens a file, checks its header (size, pixel count, aspect ratio) before decoding any
pixel, decodes JPEGs at a reduced scale when only a small output is wanted (``draft``), applies the
EXIF orientation, converts every mode to RGB the same way (alpha over white, 16-bit scaled by 1/257),
and cuts the centre crop from the *source* before resizing, so the work and memory per file are
bounded by ``max_pixels`` whatever the file's shape. A JPEG missing its end is decoded as far as its
data goes (the tolerant mode is switched on for that retry only). Bad files raise `ImageDecodeError`
whose message is the reason.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import PhospheneError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MIN_SIDE = 8
DEFAULT_MAX_ASPECT = 20.0
_TRUNCATED_LOCK = threading.Lock()


class ImageDecodeError(PhospheneError):
    """An image file that cannot be used; ``str(exc)`` is the reason."""


def display_path(path: str | os.PathLike) -> str:
    """A printable, UTF-8-encodable form of a path: undecodable bytes appear as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@contextmanager
def _tolerate_truncation() -> Iterator[None]:
    """Let PIL decode a truncated file as far as its data goes, for this block only."""
    with _TRUNCATED_LOCK:
        old, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha composited over white, 16/32-bit integers scaled to 8 bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0, 0, 255).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("PA", "LA", "RGBA", "La", "RGBa")
    if has_alpha or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def crop_box(width: int, height: int, crop_fraction: float) -> tuple[float, float, float, float]:
    """The source region that "short side to size/crop_fraction, centre crop size" keeps."""
    side = min(width, height) * crop_fraction
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def _check_header(image: Image.Image, max_pixels: int, min_side: int, max_aspect: float) -> None:
    w, h = image.size
    if w * h > max_pixels:
        raise ImageDecodeError(f"too large ({w}x{h} > {max_pixels} pixels)")
    if min(w, h) < min_side:
        raise ImageDecodeError(f"too small ({w}x{h}, a side < {min_side} px)")
    if max(w, h) > max_aspect * min(w, h):
        raise ImageDecodeError(f"extreme aspect ratio ({w}x{h}, more than {max_aspect:g}:1)")


def _region(image: Image.Image, size: int, crop_fraction: float):
    """The part of ``image`` the centre crop reads (with the bicubic filter's margin) and the crop
    box relative to it: converting and resizing only that part bounds the work by the output."""
    w, h = image.size
    left, top, right, bottom = crop_box(w, h, crop_fraction)
    margin = math.ceil(2 * (right - left) / size) + 2
    x0, y0 = max(0, math.floor(left) - margin), max(0, math.floor(top) - margin)
    x1, y1 = min(w, math.ceil(right) + margin), min(h, math.ceil(bottom) + margin)
    return image.crop((x0, y0, x1, y1)), (left - x0, top - y0, right - x0, bottom - y0)


def _decode(path: Path, size: int | None, crop_fraction: float, tolerant: bool, limits) -> Image.Image:
    with Image.open(path) as image:
        _check_header(image, *limits)
        if size is not None and image.format == "JPEG":
            w, h = image.size
            scale = min(1.0, 2 * size / crop_fraction / min(w, h))  # keep 2x what the crop needs
            image.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        if tolerant:
            with _tolerate_truncation():
                image.load()
        else:
            image.load()
        if image.getexif().get(0x0112, 1) != 1:  # only then: exif_transpose copies the image
            image = ImageOps.exif_transpose(image)
        if size is None:
            return to_rgb(image)
        region, box = _region(image, size, crop_fraction)
        return to_rgb(region).resize((size, size), Image.Resampling.BICUBIC, box=box,
                                     reducing_gap=3.0)


def read_rgb(path: str | os.PathLike, size: int | None = None, crop_fraction: float = 0.875,
             min_side: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_aspect: float = DEFAULT_MAX_ASPECT) -> Image.Image:
    """``path`` as an RGB PIL image (first frame, EXIF orientation applied); with ``size``, the
    central ``size`` square of the image scaled so its short side is ``size / crop_fraction``.

    Raises `ImageDecodeError` (the reason) for empty, unreadable, non-image, corrupt, too small,
    too large or extremely elongated files.
    """
    path = Path(path)
    limits = (max_pixels, min_side, max_aspect)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                rgb = _decode(path, size, crop_fraction, False, limits)
            except OSError as exc:
                if "truncated" not in str(exc):
                    raise
                rgb = _decode(path, size, crop_fraction, True, limits)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"too large ({exc})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unidentified format)") from None
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ImageDecodeError(f"unreadable ({type(exc).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageDecodeError(f"truncated or corrupt ({type(exc).__name__}: {str(exc)[:80]})") from None
    return rgb


def scan_images(folder: str | os.PathLike) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``folder`` (recursive, sorted) and the problems met:
    [(relative path, reason)] for subfolders that could not be read."""
    root = Path(folder)
    problems: list[tuple[str, str]] = []

    def report(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        try:
            rel = where.relative_to(root).as_posix()
        except ValueError:
            rel = str(where)
        problems.append((rel, f"unreadable folder ({type(exc).__name__}: {exc.strerror or exc})"))

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=report):
        dirnames.sort()
        for name in filenames:
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                full = Path(dirpath) / name
                if full.is_file():
                    found.append(full)
    found.sort()
    return found, sorted(problems)
