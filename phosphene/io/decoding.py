"""The one image decoder shared by `load_image`, mining and the CLI, with bounded work.

`read_rgb` opens a file and checks its header (size, aspect ratio) before decoding any pixel.

**The pixel budget** (``max_pixels``, `DEFAULT_MAX_PIXELS` = 40 million, like PIL's
``Image.MAX_IMAGE_PIXELS`` but enforced before allocating): no file is decoded into more pixels
than that. A JPEG is decoded at 1/2, 1/4 or 1/8 scale (``draft``) when that is enough, for the
budget or because only a small output is wanted; any other file larger than the budget is refused
from its header ("too large"). A decoded image takes at most 4 bytes per pixel (160 MB at the
default budget), and everything after decoding works on less: the centre crop is reduced by an
integer factor (``Image.reduce``, area averaging) straight from the decoded pixels before any mode
conversion, and the EXIF orientation is applied to the small result (a centre square crop commutes
with it). Every mode is converted to RGB the same way (alpha over white, 16-bit scaled by 1/257).

A JPEG missing its end is decoded as far as its data goes (the tolerant mode is switched on for
that retry only). Bad files raise `ImageDecodeError` whose message is the reason.
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
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import PhospheneError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 40_000_000  # pixels decoded per image (4 bytes each at most)
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
    """Any PIL mode to RGB: alpha composited over white, 16/32-bit integers scaled to 8 bit.

    Works with one RGB-sized buffer beyond its input (integer scaling in place, alpha blended by
    ``paste`` with the alpha as mask)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.array(image, dtype=np.int32)  # a writable copy, 4 bytes per pixel
        np.clip(array, 0, 65535, out=array)
        array += 128
        array //= 257  # round(v / 257): v / 257 is never exactly half-way for an integer v
        image = Image.fromarray(array.astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0, 0, 255).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("PA", "LA", "RGBA", "La", "RGBa")
    if has_alpha or (image.mode == "P" and "transparency" in image.info):
        if image.mode not in ("LA", "RGBA"):
            image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGB") if image.mode == "LA" else image,
                         mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def crop_box(width: int, height: int, crop_fraction: float) -> tuple[float, float, float, float]:
    """The source region that "short side to size/crop_fraction, centre crop size" keeps."""
    side = min(width, height) * crop_fraction
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def _check_header(image: Image.Image, min_side: int, max_aspect: float) -> None:
    w, h = image.size
    if min(w, h) < min_side:
        raise ImageDecodeError(f"too small ({w}x{h}, a side < {min_side} px)")
    if max(w, h) > max_aspect * min(w, h):
        raise ImageDecodeError(f"extreme aspect ratio ({w}x{h}, more than {max_aspect:g}:1)")


def _fit_budget(image: Image.Image, size: int | None, crop_fraction: float, max_pixels: int) -> None:
    """Ask a JPEG for the smallest scale (1, 1/2, 1/4, 1/8) that keeps twice what the crop needs
    and fits ``max_pixels``; refuse any file that would still decode to more than ``max_pixels``."""
    w, h = image.size
    if image.format == "JPEG":
        scale = 1
        while scale < 8 and (w // (2 * scale)) * (h // (2 * scale)) > 0 and (
                (w / scale) * (h / scale) > max_pixels
                or (size is not None and min(w, h) / (2 * scale) >= 2 * size / crop_fraction)):
            scale *= 2
        if scale > 1:
            image.draft("RGB", (max(1, w // scale), max(1, h // scale)))  # PIL: scale <= w // asked
    dw, dh = image.size
    if dw * dh > max_pixels:
        scaled = f", {dw}x{dh} at 1/{w // dw} scale" if (dw, dh) != (w, h) else ""
        raise ImageDecodeError(f"too large ({w}x{h}{scaled}: over the decoding budget of "
                               f"{max_pixels / 1e6:g} megapixels, --max-pixels)")


REDUCING_GAP = 3.0  # reduce by an integer factor until the crop is at most 3x the output (as PIL does)
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK"}
_ORIENTATIONS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _centre(image: Image.Image, size: int, crop_fraction: float) -> Image.Image:
    """The ``size`` centre crop of a decoded image: the region it reads (with the bicubic filter's
    margin) reduced by an integer factor straight from ``image`` (no full-size copy), converted to
    RGB, resized."""
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    w, h = image.size
    left, top, right, bottom = crop_box(w, h, crop_fraction)
    margin = math.ceil(2 * (right - left) / size) + 2
    region = (max(0, math.floor(left) - margin), max(0, math.floor(top) - margin),
              min(w, math.ceil(right) + margin), min(h, math.ceil(bottom) + margin))
    factor = int((right - left) / size / REDUCING_GAP)
    if factor >= 2 and image.mode in _REDUCIBLE:
        part = image.reduce(factor, box=region)
    else:
        factor = 1
        part = image.crop(region)
    box = tuple((v - region[i % 2]) / factor for i, v in enumerate((left, top, right, bottom)))
    return to_rgb(part).resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=REDUCING_GAP)


def _decode(path: Path, size: int | None, crop_fraction: float, tolerant: bool, limits) -> Image.Image:
    max_pixels, min_side, max_aspect = limits
    with Image.open(path) as image:
        _check_header(image, min_side, max_aspect)
        _fit_budget(image, size, crop_fraction, max_pixels)
        if tolerant:
            with _tolerate_truncation():
                image.load()
        else:
            image.load()
        orientation = image.getexif().get(0x0112, 1)
        rgb = to_rgb(image) if size is None else _centre(image, size, crop_fraction)
    return rgb.transpose(_ORIENTATIONS[orientation]) if orientation in _ORIENTATIONS else rgb


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
