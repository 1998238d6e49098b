"""A generated corpus of nasty image files (resize bombs, truncated, rotated, odd modes and names)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

NON_UTF8_FILE = os.fsdecode(b"caf\xe9.jpg")
NON_UTF8_DIR = os.fsdecode(b"dossier-\xff")


def photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A small colourful RGB picture (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    array = np.clip(array + rng.normal(0, 20, array.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def write_png16_rgba(path: Path, width: int, height: int) -> None:
    """A flat width x height RGBA PNG with 16 bits per channel, written row by row with zlib (no
    full-size buffer): huge when decoded, a few hundred KB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + np.tile(np.array([20000, 30000, 40000, 65535], dtype=">u2"), width).tobytes()
    packer = zlib.compressobj(6)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def write_bombs(folder: Path, long_side: int = 100_000) -> list[str]:
    """Tiny PNGs with huge, thin canvases: long_side x 8 and (long_side * 10) x 64 (mostly zeros)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", (long_side, 8)).save(folder / "bomb_wide.png", optimize=True)
    Image.new("L", (long_side * 10, 64)).save(folder / "bomb_huge.png", optimize=True)
    return ["bomb_wide.png", "bomb_huge.png"]


def write_bad_corpus(folder: Path) -> tuple[set[str], set[str]]:
    """Write the corpus; (files that must be used, files that must be skipped), relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    base = photo()
    good: set[str] = set()
    data = jpeg_bytes(base)
    (folder / "ok.jpg").write_bytes(data)
    (folder / "no_end_marker.jpg").write_bytes(data[:-2])  # only the final EOI marker missing
    (folder / "half.jpg").write_bytes(data[: len(data) // 2])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    (folder / "rotated.jpg").write_bytes(jpeg_bytes(base, exif=exif.tobytes()))
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "sixteen_bit.png")
    base.convert("CMYK").save(folder / "cmyk.jpg")
    base.save(folder / "animated.gif", save_all=True, append_images=[photo(seed=1)])
    base.save(folder / "picture.tiff")
    base.save(folder / "picture.webp")
    base.save(folder / "picture.bmp")
    (folder / NON_UTF8_FILE).write_bytes(data)
    (folder / NON_UTF8_DIR).mkdir()
    (folder / NON_UTF8_DIR / "inside.png").write_bytes(_png(base))
    good |= {"ok.jpg", "no_end_marker.jpg", "half.jpg", "rotated.jpg", "sixteen_bit.png", "cmyk.jpg",
             "animated.gif", "picture.tiff", "picture.webp", "picture.bmp", NON_UTF8_FILE,
             f"{NON_UTF8_DIR}/inside.png"}
    (folder / "zero.png").write_bytes(b"")
    (folder / "random.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "random.png").write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(500))
    Image.new("RGB", (4, 4)).save(folder / "tiny.png")
    bombs = write_bombs(folder, 20_000)
    return good, {"zero.png", "random.jpg", "random.png", "tiny.png", *bombs}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
