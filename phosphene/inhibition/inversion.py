"""+/- attribution accentuation and inversion for one image (Hamblin et al. 2024, METHODS §3).

For a seed image and a target unit f, the attribution through an earlier layer l is
A = a_l * df/da_l (C, H, W). Its excitatory and inhibitory parts t+ = ReLU(A), t- = ReLU(-A) are
targets for the objective ``(a_l(x) . t) * cos(a_l(x), t)^p`` over C*H*W (`objectives.alignment`):

- + / - accentuation: x starts from the seed (`SeededPhaseImage`) and moves toward t+ / t-;
- + / - inversion: x starts from random phase (`MacoImage`) and is made to produce t+ / t-;
- the plain unit visualization (channel mean of the target layer, from random phase) for comparison.

All five are rendered in one batch by one `render` call (a `stack` of objectives over a
concatenation of the two parameterizations).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from .. import objectives as obj
from ..attribution import Attributor, attribute
from ..io.display import Rich, Section, View, tiles
from ..io.images import atomic_write_bytes, save_image, to_uint8
from ..models.wrapper import as_image_model
from ..objectives import Objective
from ..param import ConcatImages, MacoImage
from ..param.seeded import SeededPhaseImage
from ..render import RenderConfig, Renderer
from ..settings import with_overrides
from ..transforms import Compose, Noise, RandomCrop
from ..units import Unit, as_unit
from .colour_key import scale_key
from .tension_plots import overlay, smooth_maps

PANELS = ("+ accentuation", "- accentuation", "+ inversion", "- inversion", "unit visualization")


@dataclass
class SeedAttribution:
    """Seed attribution through one layer: A, f, and the phi+/phi- maps (one seed or a batch)."""

    attribution: torch.Tensor  # (C, h, w), or (N, C, h, w) for a batch of seeds
    activation: torch.Tensor  # a, same shape
    f: float | torch.Tensor  # a float, or (N,)
    phi_plus: torch.Tensor  # (h, w) or (N, h, w)
    phi_minus: torch.Tensor

    @property
    def plus(self) -> torch.Tensor:
        """The excitatory target t+ = ReLU(A), signed like the activation (see `signed_targets`)."""
        return signed_targets(self.attribution, self.activation)[0]

    @property
    def minus(self) -> torch.Tensor:
        """The inhibitory target t- = ReLU(-A), signed like the activation."""
        return signed_targets(self.attribution, self.activation)[1]


def signed_targets(attribution: torch.Tensor, activation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """t+ = sign(a) ReLU(A), t- = sign(a) ReLU(-A).

    For a non-negative layer (after a ReLU, the paper's setting) this is ReLU(+-A). In a layer that
    can be negative (e.g. a block output without activation), an excitatory contribution may come from
    a negative activation with a negative gradient; matching it means making a *more negative*, so the
    target keeps the activation's sign.
    """
    sign = torch.sign(activation)
    return sign * attribution.clamp(min=0), sign * (-attribution).clamp(min=0)


def seed_attribution(model: nn.Module, seeds: torch.Tensor, target: Unit | Objective | str, layer: str
                     ) -> SeedAttribution:
    """Attribution of ``target`` through ``layer`` for one (3, H, W) image or a batch (N, 3, H, W)."""
    batch = seeds if seeds.dim() == 4 else seeds[None]
    model = as_image_model(model)
    with Attributor(model, target, [layer]) as attributor:
        result = attributor(batch.to(model.device), maps=True, keep=True)
    part = result.layers[layer]
    if seeds.dim() == 3:
        return SeedAttribution(part.attribution[0].cpu(), part.activation[0].cpu(), float(result.f[0]),
                               part.phi_plus[0].cpu(), part.phi_minus[0].cpu())
    return SeedAttribution(part.attribution.cpu(), part.activation.cpu(), result.f.cpu(), part.phi_plus.cpu(),
                           part.phi_minus.cpu())


@dataclass
class InversionResult(Rich):
    """Seed, its attribution, and the five images of `PANELS` with f on each."""

    seed: torch.Tensor  # (3, H, W)
    attribution: SeedAttribution
    images: torch.Tensor  # (5, 3, H, W) in [0, 1], in the order of PANELS
    f: torch.Tensor  # (5,) target unit on each image
    alignment: torch.Tensor  # (5,) the optimized objective on the clean images
    target: Unit
    layer: str
    settings: dict[str, Any] = field(default_factory=dict)

    def f_of(self, panel: str) -> float:
        return float(self.f[PANELS.index(panel)])

    def panels(self) -> tuple[list[torch.Tensor], list[str]]:
        """The figure's pictures and captions: seed, its φ⁺/φ⁻ map, the colour key, the five panels."""
        size = self.seed.shape[-1]
        plus, minus = smooth_maps(self.attribution.phi_plus[None], self.attribution.phi_minus[None], size)
        seed_map = torch.from_numpy(overlay(self.seed, plus[0], minus[0])).permute(2, 0, 1).float()
        pictures = [self.seed, seed_map, scale_key(size), *self.images]
        captions = [f"seed f={self.attribution.f:.2f}", "phi+ / phi-", "colour key",
                    *(f"{p} f={v:.2f}" for p, v in zip(PANELS, self.f.tolist()))]
        return pictures, captions

    def figure(self) -> Image.Image:
        """The paper's layout: seed with its phi+/phi- map, then the five panels, f under each."""
        pictures, captions = self.panels()
        size = self.seed.shape[-1]
        pad, text = 6, 26
        canvas = Image.new("RGB", (len(pictures) * (size + pad) + pad, size + text + 2 * pad), "white")
        draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
        for i, (picture, caption) in enumerate(zip(pictures, captions)):
            x = pad + i * (size + pad)
            canvas.paste(Image.fromarray(to_uint8(picture)), (x, pad))
            words = caption.split(" f=")
            draw.text((x + 2, pad + size + 2), words[0], fill="black", font=font)
            if len(words) > 1:
                draw.text((x + 2, pad + size + 13), "f=" + words[1], fill="black", font=font)
        return canvas

    def _view(self) -> View:
        pictures, captions = self.panels()
        a = self.attribution.attribution
        numbers = {"target": str(self.target), "through": self.layer, "f (seed)": self.attribution.f,
                   "E⁺": float(a.clamp(min=0).sum()), "E⁻": float((-a).clamp(min=0).sum()),
                   "steps": self.settings.get("steps", "?")}
        captions[1] = "φ⁺ / φ⁻ map"
        sections = [Section("seed and its attribution", tiles(pictures[:3], captions[:3])),
                    Section("± accentuations, ± inversions, unit visualization",
                            tiles(pictures[3:], captions[3:]), "f: the target unit on each image")]
        return View(f"± inversion of {self.target} through {self.layer}", numbers, sections)

    def save(self, out_dir: str | Path) -> dict[str, Any]:
        """Write figure.png, one PNG per panel and inversion.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_image(self.figure(), out / "figure.png")
        files = []
        for panel, image in zip(PANELS, self.images):
            name = panel.replace("+ ", "plus_").replace("- ", "minus_").replace(" ", "_") + ".png"
            save_image(image, out / name)
            files.append(name)
        record = {"target": str(self.target), "attr_layer": self.layer, "f_seed": self.attribution.f,
                  "panels": [{"panel": p, "file": n, "f": float(v), "alignment": float(a)}
                             for p, n, v, a in zip(PANELS, files, self.f, self.alignment)],
                  "settings": self.settings}
        atomic_write_bytes(out / "inversion.json", json.dumps(record, indent=2).encode())
        return record


@dataclass
class LoopOptions:
    """The `RenderConfig` settings `invert` passes on to its loop (documented there)."""

    precision: str = "fp32"
    compile: bool = False
    channels_last: bool | None = None
    fold: bool = True


def invert(model: nn.Module, image: torch.Tensor, target: Unit | Objective | str, attr_layer: str,
           steps: int = 256, lr: float = 0.02, crops: int = 4, crop_side: tuple[float, float] = (0.9, 0.99),
           noise: float = 0.02, cossim_pow: float = 1.0, seed: int = 0,
           **options: Any) -> InversionResult:
    """+/- accentuations and inversions of the seed ``image`` (3, H, W) in [0, 1] and the unit
    visualization, rendered as one batch; f is measured on each result (see `PANELS`). ``seed`` is
    the RNG seed; ``options`` are ``progress`` and the loop's `RenderConfig` settings ``precision``,
    ``compile``, ``channels_last``, ``fold`` (`LoopOptions`; an unknown one is a `PhospheneError`)."""
    return invert_many(model, image[None], target, attr_layer, steps, lr, crops, crop_side, noise, cossim_pow,
                       seed, **options)[0]


def invert_many(model: nn.Module, images: torch.Tensor, target: Unit | Objective | str, attr_layer: str,
                steps: int = 256, lr: float = 0.02, crops: int = 4,
                crop_side: tuple[float, float] = (0.9, 0.99), noise: float = 0.02, cossim_pow: float = 1.0,
                seed: int = 0, **options: Any) -> list[InversionResult]:
    """`invert` for N seed images (N, 3, H, W) at once: all 5N images are one batch of one `Renderer`
    (``options``: as `invert`'s).

    Batch layout: [+acc, -acc] for every seed (seeded phase), then [+inv, -inv] for every seed and
    one unit visualization per seed (random phase).
    """
    progress = options.pop("progress", None)
    loop = asdict(with_overrides(LoopOptions, None, options, "invert"))
    model, target = as_image_model(model), as_unit(target)
    seeds = images
    n, size = len(seeds), seeds.shape[-1]
    att = seed_attribution(model, seeds, target, attr_layer)
    plus, minus = signed_targets(att.attribution, att.activation)
    pairs = torch.stack([plus, minus], 1).flatten(0, 1)  # (2N, C, h, w): +, - per seed
    objective = obj.stack([obj.alignment(attr_layer, pairs, cossim_pow),
                           obj.alignment(attr_layer, pairs, cossim_pow), target.objective(batch=n)])
    param = ConcatImages(SeededPhaseImage(seeds.float().repeat_interleave(2, 0)),
                         MacoImage(3 * n, size, generator=torch.Generator().manual_seed(seed)))
    transforms = Compose([RandomCrop(crop_side, size), Noise(noise, noise)])
    config = RenderConfig(steps=steps, lr=lr, size=size, batch=5 * n, seed=seed, copies=crops, **loop)
    result = Renderer(model, objective, param, transforms, config).run(progress)
    f = attribute(model, result.images, target, [attr_layer], batch_size=16).f.cpu()
    settings = {**result.settings, "crop_side": list(crop_side), "noise": noise, "cossim_pow": cossim_pow}
    results = []
    for i in range(n):
        rows = [2 * i, 2 * i + 1, 2 * n + 2 * i, 2 * n + 2 * i + 1, 4 * n + i]  # order of PANELS
        single = SeedAttribution(att.attribution[i], att.activation[i], float(att.f[i]), att.phi_plus[i],
                                 att.phi_minus[i])
        results.append(InversionResult(seeds[i].cpu(), single, result.images[rows], f[rows],
                                       result.final[rows], target, attr_layer, settings))
    return results

