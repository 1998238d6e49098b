"""Compute the natural-image amplitude spectrum that the MaCo parameterization ships.

Each image is resized and centre-cropped to SIZE, mapped to the parameterization's space (logit of
the pixel values, then lucid's colour decorrelation), and its orthonormal real 2-D FFT taken per
colour channel. The mean amplitude over all images, shape (3, SIZE, SIZE // 2 + 1), is saved as
float16 to phosphene/data/maco_spectrum.npy.

    python scripts/make_maco_spectrum.py ../shared/data/imagenet-samples

Without a folder it uses the photos bundled with scikit-learn and scikit-image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from phosphene.io.images import list_images, pil_to_tensor, resize_center_crop
from phosphene.param.core import _logit, decorrelate

OUT = Path(__file__).resolve().parents[1] / "phosphene" / "data" / "maco_spectrum.npy"


def bundled_photos() -> list[Image.Image]:
    """Natural photos that ship inside scikit-learn / scikit-image, if installed."""
    photos = []
    try:
        from sklearn.datasets import load_sample_images
        photos += [Image.fromarray(a) for a in load_sample_images().images]
    except ImportError:
        pass
    try:
        import skimage.data as data
        for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"):
            photos.append(Image.fromarray(getattr(data, name)()))
    except ImportError:
        pass
    return photos


def mean_amplitude(images: list[Image.Image], size: int) -> np.ndarray:
    total = torch.zeros(3, size, size // 2 + 1, dtype=torch.float64)
    for image in images:
        x = pil_to_tensor(resize_center_crop(image.convert("RGB"), size))[None]
        t = decorrelate(_logit(x, eps=1e-3))
        total += torch.fft.rfft2(t, norm="ortho").abs()[0].double()
    return (total / len(images)).float().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="image folder (default: bundled photos)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.folder:
        images = [Image.open(p) for p in list_images(args.folder)]
    else:
        images = bundled_photos()
    if not images:
        raise SystemExit("no images found")
    spectrum = mean_amplitude(images, args.size)
    np.save(args.out, spectrum.astype(np.float16))
    print(f"wrote {args.out} from {len(images)} images, shape {spectrum.shape}")


if __name__ == "__main__":
    main()
