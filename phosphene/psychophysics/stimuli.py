"""Stimulus sets for the matching experiment: units of early/middle/late layers, each with its top
natural exemplars and several feature visualizations, stored as PNG files plus ``manifest.json``.

Layout of a stimulus folder::

    manifest.json         model, settings, and per unit: depth, layer, unit, natural and visualization files
    images/<12 hex>.png   every stimulus image; opaque names, so a URL does not tell which unit it shows
    overview.png          one row of naturals and one of visualizations per unit (for people to look at)
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from .. import mining
from .. import objectives as obj
from ..errors import PhospheneError
from ..io.display import Rich, Section, Tile, View
from ..io.images import atomic_write_bytes, image_grid, load_image, save_image
from ..io.progress import progress_bar
from ..layers.names import check_layers
from ..layers.recording import layer_table
from ..layers.tap import LayerTap
from ..models.wrapper import as_image_model, layer_root
from ..render import render

DEPTHS = ("early", "middle", "late")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class StimulusUnit:
    """One unit of the study and its images (paths relative to the stimulus folder)."""

    depth: str
    layer: str
    unit: int
    natural: list[str]
    visualizations: list[str]
    natural_values: list[float] = field(default_factory=list)
    natural_sources: list[str] = field(default_factory=list)
    visualization_values: list[float] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.layer}:{self.unit}"


@dataclass
class StimulusSet(Rich):
    """A stimulus folder: ``root`` plus the units of its manifest. In Jupyter it shows each unit's
    exemplars beside its visualizations (`overview`)."""

    root: Path
    model: str
    units: list[StimulusUnit]
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> StimulusSet:
        """Read ``root/manifest.json``; `PhospheneError` when it is missing or malformed."""
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise PhospheneError(f"no stimulus set in {root} (missing {MANIFEST}; "
                                 "make one with `phosphene experiment stimuli`)")
        try:
            data = json.loads(path.read_text())
            units = [StimulusUnit(**u) for u in data["units"]]
            stimuli = cls(root, data["model"], units, data.get("settings", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise PhospheneError(f"malformed {path}: {exc}") from exc
        missing = [p for p in stimuli.image_paths() if not (root / p).is_file()]
        if missing:
            raise PhospheneError(f"{len(missing)} stimulus images missing in {root}, e.g. {missing[0]}")
        return stimuli

    def save(self) -> None:
        """Write the manifest (atomically)."""
        data = {"format": FORMAT_VERSION, "model": self.model, "settings": self.settings,
                "units": [asdict(u) for u in self.units]}
        atomic_write_bytes(self.root / MANIFEST, json.dumps(data, indent=1).encode())

    def by_depth(self) -> dict[str, list[StimulusUnit]]:
        """Units grouped by depth, in `DEPTHS` order (depths without units left out)."""
        groups = {d: [u for u in self.units if u.depth == d] for d in DEPTHS}
        return {d: units for d, units in groups.items() if units}

    def image_paths(self) -> set[str]:
        """Every image file the manifest names (relative paths)."""
        return {p for u in self.units for p in u.natural + u.visualizations}

    def _view(self) -> View:
        numbers = {"model": self.model, **{depth: f"{len(units)} units of {units[0].layer}"
                                           for depth, units in self.by_depth().items()},
                   "steps": self.settings.get("steps", "?"), "folder": str(self.root)}
        return View(f"stimulus set {self.root.name}", numbers,
                    [Section("units: natural exemplars | visualizations", [Tile(overview(self), side=760)])])


# -- choosing layers and units -----------------------------------------------------------------------
def block_layers(model: nn.Module) -> list[str]:
    """Names of the model's main block sequence: the children of its longest ModuleList/Sequential."""
    best: tuple[int, str] = (0, "")
    for name, module in layer_root(model).named_modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > best[0]:
            best = (len(module), name)
    if best[0] < 3:
        raise PhospheneError("cannot find a block list in the model; give the layers explicitly")
    prefix = f"{best[1]}." if best[1] else ""
    return [f"{prefix}{i}" for i in range(best[0])]


def depth_layers(model: nn.Module) -> dict[str, str]:
    """One layer per depth tertile of the block list: the middle block of each third."""
    blocks = block_layers(model)
    n = len(blocks)
    bounds = [(round(i * n / 3), round((i + 1) * n / 3)) for i in range(3)]
    return {depth: blocks[(lo + hi - 1) // 2] for depth, (lo, hi) in zip(DEPTHS, bounds)}


def assign_depths(layers: list[str]) -> dict[str, str]:
    """Given three layers in depth order, map early/middle/late to them."""
    if len(layers) != 3:
        raise PhospheneError(f"give exactly three layers (early, middle, late), got {len(layers)}")
    return dict(zip(DEPTHS, layers))


def channel_counts(model: nn.Module, layers: list[str]) -> dict[str, int]:
    """Channels of each layer's output (from one small forward pass)."""
    check_layers(model, layers)
    shapes = {name: layout.canonical_shape(shape) if layout else shape
              for name, _, shape, layout in layer_table(model, 64, as_image_model(model).device)}
    return {layer: int(shapes[layer][1]) for layer in layers}


def pick_units(model: nn.Module, layers: dict[str, str], per_layer: int, seed: int = 0
               ) -> dict[str, list[int]]:
    """``per_layer`` random channels of each layer (seeded), sorted; keyed by layer name."""
    counts = channel_counts(model, list(layers.values()))
    rng = random.Random(seed)
    picked = {}
    for layer in layers.values():
        if per_layer > counts[layer]:
            raise PhospheneError(f"{layer} has {counts[layer]} channels, fewer than {per_layer}")
        picked[layer] = sorted(rng.sample(range(counts[layer]), per_layer))
    return picked


# -- natural exemplars ---------------------------------------------------------------------------------
# (layer, unit) -> [(image path, value)], best first
Exemplars = dict[tuple[str, int], list[tuple[str, float]]]


def distinct_exemplars(ranked: Exemplars, layer_units: dict[str, list[int]], k: int) -> Exemplars:
    """The top ``k`` of each unit such that no image serves two units of the same layer.

    Units take turns choosing their best remaining image (round robin), so no unit of a layer is
    favoured. A trial shows units of one layer; a shared image would make its answer ambiguous.
    """
    chosen: Exemplars = {}
    for layer, units in layer_units.items():
        taken: set[str] = set()
        cursors = {u: 0 for u in units}
        picks: dict[int, list[tuple[str, float]]] = {u: [] for u in units}
        for _ in range(k):
            for unit in units:
                candidates = ranked[(layer, unit)]
                while cursors[unit] < len(candidates) and candidates[cursors[unit]][0] in taken:
                    cursors[unit] += 1
                if cursors[unit] >= len(candidates):
                    raise PhospheneError(
                        f"not enough distinct images for {k} exemplars of each unit of {layer}")
                picks[unit].append(candidates[cursors[unit]])
                taken.add(candidates[cursors[unit]][0])
        for unit in units:
            chosen[(layer, unit)] = picks[unit]
    return chosen


def exemplars_from_run(run: str | Path, layer_units: dict[str, list[int]], k: int,
                       model_name: str | None = None) -> Exemplars:
    """Top natural exemplars (by channel mean) from a mining run, via
    ``phosphene.mining.open(run).top(layer, unit, k)``; each image used by one unit per layer.
    With ``model_name``, the run must have been mined with that model."""
    mined = mining.open(run)
    if model_name is not None and mined.model_name != model_name:
        raise PhospheneError(f"the mining run {run} was made with {mined.model_name}, not {model_name}")
    missing = [layer for layer in layer_units if layer not in mined.layers]
    if missing:
        raise PhospheneError(f"the mining run {run} has no layer {missing[0]} "
                             f"(it has {', '.join(mined.layers)}); pass --layers from those")
    ranked: Exemplars = {}
    for layer, units in layer_units.items():
        for unit in units:
            ranked[(layer, unit)] = [(str(e.path), e.value) for e in mined.top(layer, unit, mined.k)]
    return distinct_exemplars(ranked, layer_units, k)


def run_layers(model: nn.Module, run: str | Path) -> dict[str, str]:
    """Early/middle/late layers for a mining run: its three layers in forward order, or else the
    default tertile layers if the run has them all."""
    mined = mining.open(run)
    order = {name: i for i, (name, _) in enumerate(layer_root(model).named_modules())}
    if len(mined.layers) == 3:
        return assign_depths(sorted(mined.layers, key=lambda name: order.get(name, -1)))
    default = depth_layers(model)
    if all(layer in mined.layers for layer in default.values()):
        return default
    raise PhospheneError(f"the mining run {run} has layers {', '.join(mined.layers)}; "
                         "pass three of them as --layers early,middle,late")


# -- visualizations --------------------------------------------------------------------------------
def render_unit(model: nn.Module, layer: str, unit: int, n: int, steps: int, size: int,
                diversity: float, seed: int = 0, param: str = "fourier", progress: bool | None = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` visualizations of one unit, made different by the diversity term: ((n,3,H,W), (n,))."""
    objective = obj.channel(layer, [unit] * n)
    if diversity and n > 1:
        objective = objective + diversity * obj.diversity(layer)
    result = render(model, objective, param=param, steps=steps, size=size, batch=n, seed=seed,
                    progress=progress)
    # The value reported is the unit's own activation, without the diversity term.
    with torch.no_grad(), LayerTap(model, [layer]) as tap:
        act = tap(result.images.to(as_image_model(model).device))[layer]
        values = act[:, unit].float().mean((-2, -1)).cpu()
    return result.images, values


# -- building a set --------------------------------------------------------------------------------
@dataclass
class StimulusSettings:
    """What `build_stimuli` was asked for (stored in the manifest)."""

    naturals: int = 10
    visualizations: int = 5
    steps: int = 256
    viz_size: int = 224
    image_size: int = 224
    diversity: float = 10.0
    param: str = "fourier"
    seed: int = 0


def _opaque_name(seed: int, *parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).hexdigest()[:12]
    return f"images/{digest}.png"


def build_stimuli(model: nn.Module, out: str | Path, depths: dict[str, str],
                  layer_units: dict[str, list[int]], exemplars: Exemplars,
                  settings: StimulusSettings | None = None, progress: bool | None = None) -> StimulusSet:
    """Render the visualizations, copy the exemplars (centre-cropped PNGs) and write the manifest.

    Args:
        depths: depth name -> layer, e.g. ``{"early": "_blocks.2", ...}``.
        layer_units: layer -> units of that layer.
        exemplars: (layer, unit) -> at least ``settings.naturals`` (image path, value), best first.
    """
    settings = settings or StimulusSettings()
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    units: list[StimulusUnit] = []
    jobs = [(depth, layer, unit) for depth, layer in depths.items() for unit in layer_units[layer]]
    for depth, layer, unit in progress_bar(jobs, desc="stimuli", unit="unit", progress=progress):
        best = exemplars[(layer, unit)][: settings.naturals]
        if len(best) < settings.naturals:
            raise PhospheneError(f"{layer}:{unit} has {len(best)} exemplars, {settings.naturals} needed")
        natural = []
        for rank, (source, _value) in enumerate(best):
            rel = _opaque_name(settings.seed, layer, unit, "natural", rank)
            save_image(load_image(source, settings.image_size), root / rel)
            natural.append(rel)
        images, values = render_unit(model, layer, unit, settings.visualizations, settings.steps,
                                     settings.viz_size, settings.diversity, settings.seed + unit,
                                     settings.param)
        visualizations = []
        for i, image in enumerate(images):
            rel = _opaque_name(settings.seed, layer, unit, "viz", i)
            save_image(image, root / rel)
            visualizations.append(rel)
        units.append(StimulusUnit(depth, layer, unit, natural, visualizations,
                                  [round(v, 5) for _, v in best], [s for s, _ in best],
                                  [round(float(v), 5) for v in values]))
    stimuli = StimulusSet(root, getattr(model, "name", type(model).__name__), units,
                          {**asdict(settings), "depths": depths})
    stimuli.save()
    save_image(overview(stimuli), root / "overview.png")
    return stimuli


def demo_stimuli(out: str | Path, units_per_depth: int = 3, naturals: int = 10, visualizations: int = 5,
                 size: int = 32, seed: int = 0) -> StimulusSet:
    """A model-free stimulus set for trying the web experiment and for tests: each "unit" is a hue;
    its "naturals" are noisy patches of that hue, its "visualizations" stripes of it."""
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    units = []
    count = len(DEPTHS) * units_per_depth
    for d, depth in enumerate(DEPTHS):
        for u in range(units_per_depth):
            hue = (d * units_per_depth + u) / count
            colour = torch.tensor([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)])
            colour = colour.clamp(0, 1)[:, None, None]
            files: dict[str, list[str]] = {"natural": [], "viz": []}
            for kind, n in (("natural", naturals), ("viz", visualizations)):
                for i in range(n):
                    noise = torch.rand(3, size, size, generator=gen) * 0.3
                    image = colour * 0.7 + noise
                    if kind == "viz":
                        image = image * (torch.arange(size) // 4 % 2)[None, None, :].float()
                    rel = _opaque_name(seed, f"demo.{d}", u, kind, i)
                    save_image(image.clamp(0, 1), root / rel)
                    files[kind].append(rel)
            units.append(StimulusUnit(depth, f"demo.{d}", u, files["natural"], files["viz"]))
    stimuli = StimulusSet(root, "demo", units, {"demo": True, "seed": seed})
    stimuli.save()
    return stimuli


def overview(stimuli: StimulusSet, cell: int = 64, per_row: int = 5):
    """A PIL image: one line per unit, its natural exemplars then its visualizations, with the layer,
    unit and what each half of the line shows written on the left."""
    tiles = []
    blank = torch.ones(3, cell, cell)
    for u in stimuli.units:
        for paths in (u.natural[:per_row], u.visualizations[:per_row]):
            for i in range(per_row):
                tiles.append(load_image(stimuli.root / paths[i], cell) if i < len(paths) else blank)
    grid = image_grid(torch.stack(tiles), columns=2 * per_row)
    label_width, pad = 120, 4
    canvas = Image.new("RGB", (grid.size[0] + label_width, grid.size[1] + 16), "white")
    canvas.paste(grid, (label_width, 16))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    draw.text((label_width + pad, 2), f"natural exemplars ({per_row} shown)", fill="black", font=font)
    draw.text((label_width + pad + per_row * (cell + pad), 2), "feature visualizations", fill="black",
              font=font)
    for row, u in enumerate(stimuli.units):
        y = 16 + pad + row * (cell + pad) + cell // 2 - 12
        draw.text((2, y), f"{u.depth} layer", fill="black", font=font)
        draw.text((2, y + 12), f"{u.layer} unit {u.unit}", fill="black", font=font)
    return canvas
