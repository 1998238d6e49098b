"""Differentiable random transforms, composed into one affine warp per image and sampled once.

Geometric transforms (pad, jitter, scale, rotate, random crop) are described by the map from output
pixel coordinates back to input coordinates (centred on the canvas). A `Compose` multiplies these
maps, each batch element with its own random draw, and resamples the image once with
``grid_sample``; noise is added after. Drawing parameters (`Compose.sample`) is separate from
applying them (`Compose.apply`), so a draw can be logged, replayed or set to identity.

Canvas sizes follow lucid: pad adds 2*p pixels, jitter removes d, scale and rotate keep the size,
a random crop resizes to its own output size. ``standard_transforms()`` is lucid's standard set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import PhospheneError


def _eye(n: int, device) -> torch.Tensor:
    return torch.eye(3, device=device).expand(n, 3, 3).clone()


def _uniform(n: int, lo: float, hi: float, gen, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


class Geometric:
    """A random spatial transform: ``sample`` gives (N, 3, 3) maps output -> input pixels."""

    def out_size(self, size: int) -> int:
        return size

    def sample(self, n: int, size: int, gen, device) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@dataclass
class Pad(Geometric):
    """Pad by ``pixels`` on each side with a constant ``fill`` (or "reflect")."""

    pixels: int
    fill: float | str = 0.5

    def out_size(self, size: int) -> int:
        return size + 2 * self.pixels

    def sample(self, n, size, gen, device):
        return _eye(n, device)  # centred coordinates do not move; the canvas grows


@dataclass
class Jitter(Geometric):
    """Random crop removing ``pixels`` in total per axis (a shift of up to pixels/2)."""

    pixels: int

    def out_size(self, size: int) -> int:
        return size - self.pixels

    def sample(self, n, size, gen, device):
        m = _eye(n, device)
        half = self.pixels / 2
        m[:, 0, 2] = _uniform(n, -half, half, gen, device)
        m[:, 1, 2] = _uniform(n, -half, half, gen, device)
        return m


@dataclass
class Scale(Geometric):
    """Zoom about the centre by a factor drawn from ``factors``."""

    factors: Sequence[float]

    def sample(self, n, size, gen, device):
        factors = torch.tensor(list(self.factors), device=device, dtype=torch.float32)
        pick = torch.randint(len(factors), (n,), generator=gen, device=device)
        m = _eye(n, device)
        m[:, 0, 0] = m[:, 1, 1] = 1.0 / factors[pick]
        return m


@dataclass
class Rotate(Geometric):
    """Rotate about the centre by an angle (degrees) drawn uniformly from ``degrees``."""

    degrees: tuple[float, float] = (-5.0, 5.0)

    def sample(self, n, size, gen, device):
        angle = _uniform(n, self.degrees[0], self.degrees[1], gen, device) * (math.pi / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        m = _eye(n, device)
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, sin, -sin, cos
        return m


@dataclass
class RandomCrop(Geometric):
    """Square crop with side a fraction in ``side`` of the canvas, uniform position, resized to
    ``size`` pixels (the faccent augmentation)."""

    side: tuple[float, float] = (0.05, 0.99)
    size: int = 224

    def out_size(self, size: int) -> int:
        return self.size

    def sample(self, n, size, gen, device):
        side = _uniform(n, self.side[0], self.side[1], gen, device) * size
        room = (size - side) / 2
        m = _eye(n, device)
        m[:, 0, 0] = m[:, 1, 1] = side / self.size
        m[:, 0, 2] = (torch.rand(n, generator=gen, device=device) * 2 - 1) * room
        m[:, 1, 2] = (torch.rand(n, generator=gen, device=device) * 2 - 1) * room
        return m


@dataclass
class Resize(Geometric):
    """Resize the canvas to ``size`` pixels (no randomness): the last step of a chain that must end
    at a fixed-input model's side."""

    size: int

    def out_size(self, size: int) -> int:
        return self.size

    def sample(self, n, size, gen, device):
        m = _eye(n, device)
        m[:, 0, 0] = m[:, 1, 1] = size / self.size
        return m


@dataclass
class Noise:
    """Additive Gaussian noise of std ``gaussian`` plus uniform noise in +-``uniform``."""

    gaussian: float = 0.02
    uniform: float = 0.0

    def apply(self, images: torch.Tensor, gen) -> torch.Tensor:
        # draws in place into fresh buffers (no zeros, no temporaries); same draws as before
        like = dict(generator=gen, device=images.device, dtype=images.dtype)
        if self.gaussian:
            images = images + torch.randn(images.shape, **like).mul_(self.gaussian)
        if self.uniform:
            images = images + torch.rand(images.shape, **like).mul_(2 * self.uniform).sub_(self.uniform)
        return images


class Compose:
    """A chain of transforms applied as one warp (geometric ones) followed by noise."""

    def __init__(self, transforms: Sequence[Geometric | Noise] = ()):
        self.transforms = list(transforms)
        self.geometric = [t for t in self.transforms if isinstance(t, Geometric)]
        self.noise = [t for t in self.transforms if isinstance(t, Noise)]
        pads = [t for t in self.geometric if isinstance(t, Pad)]
        self.fill = pads[0].fill if pads else "reflect"

    def out_size(self, size: int) -> int:
        """Side of the output canvas for an input of side ``size``."""
        for t in self.geometric:
            size = t.out_size(size)
        if size <= 0:
            raise PhospheneError("the transforms shrink the image to nothing; use a larger size")
        return size

    def sample(self, n: int, size: int, gen: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """Draw (n, 3, 3) maps from output pixels (centred) to input pixels (centred)."""
        total = _eye(n, device)
        canvas = size
        for t in self.geometric:
            # total maps the current canvas to the input; prepend this step's backward map.
            total = total @ t.sample(n, canvas, gen, device)
            canvas = t.out_size(canvas)
        return total

    def identity(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The draw that leaves every image unchanged (for tests and replays)."""
        return _eye(n, device)

    def apply(self, images: torch.Tensor, maps: torch.Tensor, out_size: int | None = None,
              gen: torch.Generator | None = None) -> torch.Tensor:
        """Warp (N, 3, H, W) images with ``maps`` (N, 3, 3) in one ``grid_sample`` call."""
        out = out_size or self.out_size(images.shape[-1])
        if out != images.shape[-1] or not _is_identity(maps):
            images = self._warp(images, maps, out)
        return self._add_noise(images, gen)

    def _warp(self, images: torch.Tensor, maps: torch.Tensor, out: int) -> torch.Tensor:
        grid = sampling_grid(maps, images.shape[-1], out, images.dtype)
        if self.fill == "reflect":
            return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                                 align_corners=False)
        fill = float(self.fill)
        return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False) + fill

    def _add_noise(self, images: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        for noise in self.noise:
            images = noise.apply(images, gen)
        return images

    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None,
                 copies: int = 1) -> torch.Tensor:
        """Repeat each image ``copies`` times (adjacent) and transform every copy independently."""
        if copies > 1:
            images = images.repeat_interleave(copies, 0)
        side = images.shape[-1]
        if self.geometric:  # a random draw: warp without checking for the identity (no host sync)
            maps = self.sample(images.shape[0], side, gen, images.device)
            images = self._warp(images, maps, self.out_size(side))
        return self._add_noise(images, gen)


_COORDS: dict[tuple, torch.Tensor] = {}


def _base_coords(out: int, device, dtype) -> torch.Tensor:
    """Normalized pixel centres of an ``out``-pixel axis, as affine_grid(align_corners=False) uses
    (made once per size, device and dtype)."""
    key = (out, str(device), dtype)
    if key not in _COORDS:
        if len(_COORDS) > 64:
            _COORDS.clear()
        _COORDS[key] = (torch.arange(out, device=device, dtype=dtype) * 2 + 1) / out - 1
    return _COORDS[key]


def sampling_grid(maps: torch.Tensor, size: int, out: int, dtype: torch.dtype = torch.float32
                  ) -> torch.Tensor:
    """The (N, out, out, 2) ``grid_sample`` grid of ``maps`` (N, 3, 3) from output to input pixels
    (centred) for a (size x size) input: ``F.affine_grid`` of the same map, built by broadcasting
    two (out,) coordinate vectors instead of a batched matmul against an (N, out*out, 3) base."""
    # pixel-centred -> normalized coordinates: in = maps(out * out/2) / (size/2)
    theta = maps[:, :2, :].to(dtype)
    linear = theta[:, :, :2] * (out / size)
    shift = theta[:, :, 2] / (size / 2)
    coords = _base_coords(out, maps.device, dtype)
    xs, ys = coords[None, None, :], coords[None, :, None]
    gx = linear[:, 0, 0, None, None] * xs + linear[:, 0, 1, None, None] * ys + shift[:, 0, None, None]
    gy = linear[:, 1, 0, None, None] * xs + linear[:, 1, 1, None, None] * ys + shift[:, 1, None, None]
    return torch.stack([gx, gy], -1)


def _is_identity(maps: torch.Tensor) -> bool:
    # Only used for the explicit identity draw; a Python-side check on a tiny tensor.
    return maps.device.type == "cpu" and bool((maps == torch.eye(3)).all())


def standard_transforms() -> Compose:
    """The Distill article's set: pad 12, jitter 8, scale {1, .975, 1.025, .95, 1.05},
    rotate -5..5 degrees, jitter 4 (each batch element with its own draw)."""
    return Compose([
        Pad(12, fill=0.5),
        Jitter(8),
        Scale([1.0, 0.975, 1.025, 0.95, 1.05]),
        Rotate((-5.0, 5.0)),
        Jitter(4),
    ])


def crop_transforms(side: tuple[float, float] = (0.05, 0.99), size: int = 224,
                    noise: float = 0.02) -> Compose:
    """faccent's augmentation: random square crops resized to ``size``, Gaussian + uniform noise."""
    return Compose([RandomCrop(side, size), Noise(noise, noise)])


def ending_at(transforms: Compose, size: int, side: int | None) -> Compose:
    """``transforms`` for ``size``-pixel images, followed by a `Resize` to ``side`` when they do not
    already end there (fixed-input models; None: as is)."""
    if side is None or transforms.out_size(size) == side:
        return transforms
    return Compose([*transforms.geometric, Resize(side), *transforms.noise])


TRANSFORM_SETS = ("standard", "none", "crops")


def make_transforms(name: str | Compose | None, size: int = 224) -> Compose:
    """A transform set by name: "standard" (lucid), "crops" (faccent), or "none"."""
    if isinstance(name, Compose):
        return name
    if name in (None, "none"):
        return Compose([])
    if name == "standard":
        return standard_transforms()
    if name == "crops":
        return crop_transforms(size=size)
    raise PhospheneError(f"unknown transform set {name!r}; choose from {', '.join(TRANSFORM_SETS)}")


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (N, C, H, W) maps with a separable Gaussian of std ``sigma`` pixels (reflect padding)."""
    if sigma <= 0:
        return maps
    radius = max(1, int(3 * sigma + 0.5))
    radius = min(radius, maps.shape[-1] - 1, maps.shape[-2] - 1)
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = maps.shape[1]
    out = F.pad(maps, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
