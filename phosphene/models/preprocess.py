"""`ImageSpec`: how a model wants its images — input size, resize, crop, interpolation, mean/std.

Every `ImageModel` carries one (``model.spec``). ``spec.prepare(image)`` turns a PIL image or an image
file into the model's (3, S, S) input in [0, 1] exactly as the model's own evaluation transform does
(torchvision's ``Resize(resize_size) + CenterCrop(input_size)``, timm's ``crop_pct``): resize the short
side to ``resize_size`` with ``interpolation`` (antialiased), cut the central ``input_size`` square.
Mean/std are applied inside the model's forward, not here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from PIL import Image

from ..io.decoding import read_rgb
from ..io.images import pil_to_tensor
from .input_shape import to_channels

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class ImageSpec:
    """A model's evaluation preprocessing (its input size, resize side, interpolation, mean/std)."""

    input_size: int = 224
    resize_size: int | None = None  # short side before the centre crop; None: input_size / 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = field(default=(0.0, 0.0, 0.0))
    std: tuple[float, ...] = field(default=(1.0, 1.0, 1.0))

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}")
        if self.resize_size is None:
            object.__setattr__(self, "resize_size", round(self.input_size / 0.875))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @property
    def crop_fraction(self) -> float:
        """``input_size / resize_size`` (timm's ``crop_pct``)."""
        return self.input_size / self.resize_size

    def prepare(self, image: Image.Image | str | os.PathLike | torch.Tensor) -> torch.Tensor:
        """(C, input_size, input_size) float tensor in [0, 1] from a PIL image, a file path, or a
        (3, H, W) tensor in [0, 1]: short side resized to ``resize_size``, centre-cropped; C is the
        number of ``mean`` entries (RGB made gray by luma for a 1-channel model)."""
        image = center_crop(resize_short_side(to_tensor(image), self.resize_size, self.interpolation),
                            self.input_size)
        return to_channels(image, len(self.mean))


def to_tensor(image: Image.Image | str | os.PathLike | torch.Tensor) -> torch.Tensor:
    """(3, H, W) float tensor in [0, 1] from a PIL image, a file path or such a tensor."""
    if isinstance(image, torch.Tensor):
        return image.float()
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)
    # the package's one decoder: EXIF orientation, first frame, 16-bit and CMYK handled, bounded work
    return pil_to_tensor(read_rgb(image, max_aspect=math.inf))


def resize_short_side(image: torch.Tensor, side: int, interpolation: str = "bicubic") -> torch.Tensor:
    """(3, H, W) -> (3, h, w) with min(h, w) == ``side`` (aspect kept, antialiased, clamped to [0, 1])."""
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    if size == (h, w):
        return image
    smooth = interpolation != "nearest"
    out = F.interpolate(image[None], size=size, mode=interpolation, antialias=smooth,
                        **({"align_corners": False} if smooth else {}))
    return out[0].clamp(0, 1)


def center_crop(image: torch.Tensor, side: int) -> torch.Tensor:
    """The central ``side`` x ``side`` square of a (3, H, W) image (H, W >= side)."""
    h, w = image.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top:top + side, left:left + side].contiguous()


def spec_for(model: object, size: int | None = None) -> ImageSpec:
    """``model``'s `ImageSpec` (a plain module: the default one) for images of side ``size``
    (default: its input size): the same crop fraction and interpolation at another size."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ImageSpec):
        spec = ImageSpec(getattr(model, "input_size", 224))
    if size is None or size == spec.input_size:
        return spec
    return replace(spec, input_size=size, resize_size=round(size / spec.crop_fraction))


def load_for(model: object, path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """The image file ``path`` as ``model``'s (C, S, S) input in [0, 1], preprocessed as the model's
    own evaluation transform (`spec_for`); `ImageDecodeError` for an unusable file."""
    return spec_for(model, size).prepare(path)
