"""The crops an accentuation shares with its seed, and the latent distance R measured on them.

- `SharedCrops`: faccent's augmentation (random square crops + noise), each draw reusable on the seeds;
  by default made as faccent makes it (`boxes`), or as one continuous warp (``style="warp"``).
- `channel_distance` / `LatentDistance`: R = mean over crops and positions of the channel L2 distance
  ||a_l(T x) - a_l(T x0)||_2 between an image's and its seed's activations under the same crop T.
- `measure`: f and R of any images against their seeds, on one fixed seeded draw (for comparisons).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PhospheneError
from ..layers.model_state import frozen
from ..layers.names import INPUT
from ..layers.tap import LayerTap
from ..models.input_shape import fit_side
from ..models.wrapper import as_image_model
from ..objectives import Acts, Objective, evaluate
from ..transforms import Compose, RandomCrop
from .boxes import box_noise, crop_boxes, draw_boxes

CROP_STYLES = ("faccent", "warp")


# -- crops shared by the image and its seed ---------------------------------------------------
@dataclass
class CropDraw:
    """One draw of crops: (n*k, 3, 3) maps (output -> input pixels) or (n*k, 4) integer ``boxes``
    (faccent's style), and (n*k, 3, s, s) noise."""

    maps: torch.Tensor | None
    noise: torch.Tensor | None
    boxes: torch.Tensor | None = None


class SharedCrops(Compose):
    """faccent's augmentation, with each draw reusable on the seeds.

    Square crops with side a uniform fraction in ``side`` of the canvas, uniform position, resized to
    ``size``; plus Gaussian noise (std ``noise``) and uniform noise (+-``noise``/2). ``style``
    "faccent": integer boxes, noise at the crop's resolution and faccent's resize (`boxes`); "warp":
    continuous crops in one ``grid_sample``, noise at ``size`` (phosphene's earlier crops). The
    images are ``group`` adjacent copies of each seed (one per lambda); the copies of a seed share
    their crops. A call keeps its draw in ``pending``; `take` hands it (once) to whoever replays it.
    """

    def __init__(self, side: tuple[float, float] = (0.05, 0.99), size: int = 224,
                 noise: float = 0.02, group: int = 1, style: str = "faccent",
                 streams: Sequence[int] | None = None):
        super().__init__([RandomCrop(tuple(side), size)])
        if style not in CROP_STYLES:
            raise PhospheneError(f"unknown crop style {style!r}; use one of {', '.join(CROP_STYLES)}")
        self.side, self.size, self.noise_std, self.group, self.style = tuple(side), size, noise, group, style
        self.pending: CropDraw | None = None
        self._host: tuple[torch.Generator, torch.Generator] | None = None
        self.streams = None if streams is None else [int(s) for s in streams]
        self._stream_gens: dict[tuple[int, str], list[tuple[torch.Generator, torch.Generator]]] = {}

    def _host_generator(self, gen: torch.Generator | None) -> torch.Generator | None:
        """``gen`` if it is a CPU generator (or None); else a CPU generator seeded from its seed, made
        once per ``gen``, so that faccent's boxes on a GPU are drawn without a device round trip."""
        if gen is None or gen.device.type == "cpu":
            return gen
        if self._host is None or self._host[0] is not gen:
            self._host = (gen, torch.Generator().manual_seed(gen.initial_seed()))
        return self._host[1]

    def _streams_of(self, n: int, gen: torch.Generator | None, device: torch.device | str
                    ) -> list[tuple[torch.Generator, torch.Generator]]:
        """(host, device) generators of each seed's stream, made once per caller generator ``gen``
        (its initial seed and each stream number give the seed, `stream_seed`)."""
        if len(self.streams) != n:
            raise PhospheneError(f"{len(self.streams)} random streams for {n} seed images")
        base = 0 if gen is None else gen.initial_seed()
        device = torch.device(device)
        key = (base, str(device))
        if key not in self._stream_gens:
            pairs = []
            for stream in self.streams:
                seed = stream_seed(base, stream)
                host = torch.Generator().manual_seed(seed)
                pairs.append((host, host if device.type == "cpu"
                              else torch.Generator(device=device).manual_seed(seed)))
            self._stream_gens[key] = pairs
        return self._stream_gens[key]

    def draw(self, n: int, copies: int, canvas: int, gen: torch.Generator | None,
             device: torch.device | str, channels: int = 3) -> CropDraw:
        """Crops and noise for ``copies`` views of each of ``n`` seeds (``channels`` per image); with
        ``streams``, each seed's from its own generators (`_streams_of`), not from ``gen``'s sequence,
        so that a seed's draws do not depend on the other seeds of the batch."""
        if self.streams is None:
            return self._draw(n * copies, canvas, self._host_generator(gen), gen, device, channels)
        parts = [self._draw(copies, canvas, host, dev, device, channels)
                 for host, dev in self._streams_of(n, gen, device)]

        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(part, name) for part in parts]
            return None if values[0] is None else torch.cat(values)

        return CropDraw(cat("maps"), cat("noise"), cat("boxes"))

    def _draw(self, count: int, canvas: int, host: torch.Generator | None, gen: torch.Generator | None,
              device: torch.device | str, channels: int) -> CropDraw:
        if self.style == "faccent":  # integer boxes, drawn on the host: reading them needs no sync
            boxes = draw_boxes(count, canvas, self.side, host, "cpu")
            noise = (box_noise(boxes, self.size, self.noise_std, gen, device, channels)
                     if self.noise_std else None)
            return CropDraw(None, noise, boxes)
        maps = self.sample(count, canvas, gen, device)
        noise = None
        if self.noise_std:
            shape = (count, channels, self.size, self.size)
            noise = torch.randn(shape, generator=gen, device=device) * self.noise_std
            noise += (torch.rand(shape, generator=gen, device=device) - 0.5) * self.noise_std
        return CropDraw(maps, noise)

    def apply_draw(self, images: torch.Tensor, draw: CropDraw, group: int = 1) -> torch.Tensor:
        """Views (n*group*k, 3, size, size) of ``images`` (n*group rows) under ``draw`` (n*k rows)."""
        n = images.shape[0] // group
        if draw.boxes is not None:
            k = draw.boxes.shape[0] // n
            views = crop_boxes(images, draw.boxes, self.size, group)
        else:
            k = draw.maps.shape[0] // n
            maps = draw.maps.view(n, 1, k, 3, 3).expand(n, group, k, 3, 3).reshape(-1, 3, 3)
            # a random draw: warped without `apply`'s identity check (a host read on the CPU)
            views = self._warp(images.repeat_interleave(k, 0), maps.to(images.dtype), self.size)
        if draw.noise is not None:
            noise = draw.noise.view(n, 1, k, *draw.noise.shape[1:]).expand(n, group, k, -1, -1, -1)
            views = views + noise.reshape(views.shape).to(views.dtype)
        return views

    def __call__(self, images: torch.Tensor, gen: torch.Generator | None = None,
                 copies: int = 1) -> torch.Tensor:
        n = images.shape[0] // self.group
        self.pending = self.draw(n, copies, images.shape[-1], gen, images.device, images.shape[1])
        return self.apply_draw(images, self.pending, self.group)

    def take(self) -> CropDraw | None:
        """The last draw, once (None when it was taken or there was none: un-transformed images)."""
        draw, self.pending = self.pending, None
        return draw


def stream_seed(base: int, stream: int) -> int:
    """The seed of random stream ``stream`` under the caller's seed ``base`` (a 63-bit hash of both)."""
    digest = hashlib.blake2b(f"{base}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# -- the latent regularization ----------------------------------------------------------------
def channel_distance(acts: torch.Tensor, seed_acts: torch.Tensor, n: int, eps: float = 1e-3
                     ) -> torch.Tensor:
    """Per row of ``acts``: mean over positions of the channel L2 distance to the seed's row.

    acts: (n*g*k, C, ...) rows ordered (seed, copy, view); seed_acts: (n*k, C, ...). Returns (n*g*k,).
    The norm is smoothed, sqrt(d^2 + eps^2) - eps, so that its gradient is 0 (not a random direction
    from round-off) where x equals x0.
    """
    k = seed_acts.shape[0] // n
    g = acts.shape[0] // seed_acts.shape[0]
    a = acts.float().reshape(n, g, k, acts.shape[1], -1)
    a0 = seed_acts.float().reshape(n, 1, k, seed_acts.shape[1], -1)
    dist = ((a - a0).pow(2).sum(3) + eps * eps).sqrt() - eps
    return dist.mean(-1).reshape(-1)


class LatentDistance:
    """R for each view of the accentuations: `channel_distance` at ``layer`` to the seeds' views.

    Reads the images' activations from ``acts``, replays the crops' last draw on the seeds and runs
    them (no gradient) through its own truncated `LayerTap`, created and run once here so that its
    hook fires before any later tap's.
    """

    def __init__(self, model: nn.Module, layer: str, seeds: torch.Tensor, crops: SharedCrops):
        self.layer, self.seeds, self.crops = layer, seeds, crops
        self.tap = None if layer == INPUT else LayerTap(model, [layer])
        self.side = as_image_model(model).fixed_side  # the un-cropped seeds are resized to it (ViTs)
        self.seed_acts(seeds[:1])

    def seed_acts(self, views: torch.Tensor) -> torch.Tensor:
        views = fit_side(views, self.side)
        with torch.no_grad():
            return views if self.tap is None else self.tap(views)[self.layer]

    def __call__(self, acts: Acts) -> torch.Tensor:
        draw = self.crops.take()
        views = self.seeds if draw is None else self.crops.apply_draw(self.seeds, draw)
        return channel_distance(acts[self.layer], self.seed_acts(views), self.seeds.shape[0])

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()


# -- measuring ----------------------------------------------------------------------------------
def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of (N, 3, H, W) to (N, 3, size, size); a no-op at that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def measure(model: nn.Module, objective: Objective, reg_layer: str, images: torch.Tensor,
            seeds: torch.Tensor, crops: int = 16, input_size: int | None = None,
            side: tuple[float, float] = (0.05, 0.99), seed: int = 1234, chunk: int = 16,
            streams: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """f and R of ``images`` (M = N*g rows, g copies per seed) against ``seeds`` (N), measured the
    same way for any method: f on the whole image resized to ``input_size``; R over one fixed,
    seeded draw of ``crops`` noise-free crops shared by image and seed (with ``streams``, one
    stream per seed, as in `SharedCrops`). Returns (f (M,), R (M,))."""
    model = as_image_model(model)
    device = model.device
    images, seeds = images.to(device).float(), seeds.to(device).float()
    size = input_size or model.input_size
    n, group = seeds.shape[0], images.shape[0] // seeds.shape[0]
    with frozen(model):
        with LayerTap(model, objective.layers) as tap:
            f = evaluate(objective, Acts(tap(resize(images, size))))
        if crops == 0:
            return f.float().cpu(), torch.zeros(images.shape[0])
        shared = SharedCrops(side, size, noise=0.0, style="warp", streams=streams)
        draw = shared.draw(n, crops, seeds.shape[-1], torch.Generator().manual_seed(seed), "cpu")
        draw = CropDraw(draw.maps.to(device), None)
        with LayerTap(model, [] if reg_layer == INPUT else [reg_layer]) as reg_tap:
            def acts(views: torch.Tensor) -> torch.Tensor:
                if reg_layer == INPUT:
                    return views
                reg_tap(views[:1])  # learn where to stop before the big batches
                return torch.cat([reg_tap(part)[reg_layer] for part in views.split(chunk)])

            r = channel_distance(acts(shared.apply_draw(images, draw, group)),
                                 acts(shared.apply_draw(seeds, draw)), n)
    return f.float().cpu(), r.view(-1, crops).mean(1).cpu()
