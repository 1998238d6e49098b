"""Attribution atlas (Hamblin et al. 2024) and activation atlas (Carter et al. 2019).

Pipeline (METHODS §3, §5):

1. vectors, one per image: the attribution A = a_l * df/da_l summed over positions (a C-vector;
   signed like the activation in layers that can be negative, see `attribution_vectors`), or
   for the activation atlas one random spatial activation of layer l per image (whitened).
2. `umap_layout` (cosine metric) -> `normalize_layout` (1st/99th percentiles + 10% margin, clipped).
3. `bin_layout`: a grid x grid raster; cells with more than ``min_points`` points are kept.
4. icons: each kept cell is rendered with the alignment objective ``(a . v) * cos(a, v)^p``
   (`objectives.alignment`), all icons of the atlas in batches. For an attribution atlas v is what is
   specific to the cell (`atlas_icons.cell_directions`: its mean minus the mean of all, whitened by
   default); for an activation atlas, Carter et al.'s whitened cell mean.
5. each icon's frame is coloured by the mean f (the target unit) of the dataset images in its cell, on
   a diverging scale centred at 0, with that mean and the image count as its caption and a colour key
   (`atlas_icons.compose_atlas`); `scatter_figure` shows the layout coloured by f and sized by vector
   norm; `atlas_page` writes an HTML page where hovering a cell shows the dataset images in it.

Attribution atlas selection (documented choice): from all images, the ``per_group`` with the
largest f, the ``per_group`` with the smallest f, and the ``per_group`` with the largest
attribution norm ||sum_positions A||, merged without duplicates.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import objectives as obj
from ..attribution import Attributor, attribute
from ..errors import PhospheneError
from ..io.display import Rich, Section, Tile, View, new_figure
from ..io.images import atomic_write_bytes, save_image, to_uint8
from ..io.progress import progress_bar
from ..layers.tap import LayerTap
from ..mining.source import ImageSource, load_source  # noqa: F401  (re-exported)
from ..models.wrapper import as_image_model
from ..objectives import Objective
from ..render import RenderConfig, Renderer
from ..settings import with_overrides
from ..transforms import Compose, Jitter, Noise, Pad, Rotate, Scale
from ..units import Unit, as_unit
from .atlas_defaults import auto_grid, auto_min_points, sparse_hint
from .atlas_icons import (  # noqa: F401
    ICON_DECAY_POWER,
    ICON_DIRECTIONS,
    cell_directions,
    cell_f,
    compose_atlas,
    icon_diversity,
)
from .atlas_page import write_page
from .norm_check import completeness_warnings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("attribution", "activation")


# -- layout ------------------------------------------------------------------------------------
def umap_layout(vectors: np.ndarray, n_neighbors: int = 10, min_dist: float = 0.1, seed: int = 0
                ) -> np.ndarray:
    """(N, C) vectors -> (N, 2) UMAP embedding with the cosine metric."""
    import umap

    n_neighbors = max(2, min(n_neighbors, len(vectors) - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed,
                        n_jobs=1)
    return reducer.fit_transform(np.asarray(vectors, dtype=np.float32))


def normalize_layout(xy: np.ndarray, low: float = 1.0, high: float = 99.0, margin: float = 0.1
                     ) -> np.ndarray:
    """Map (N, 2) points into [0, 1]^2: the ``low``..``high`` percentile box plus ``margin`` of its
    size on each side spans the square; points beyond are clipped to its border."""
    lo, hi = np.percentile(xy, low, axis=0), np.percentile(xy, high, axis=0)
    span = np.maximum(hi - lo, 1e-12)
    lo, span = lo - margin * span, span * (1 + 2 * margin)
    return np.clip((xy - lo) / span, 0.0, 1.0)


@dataclass
class Cell:
    """One kept grid cell: its row, column and the indices of the points in it."""

    row: int
    col: int
    members: np.ndarray


def bin_layout(xy01: np.ndarray, grid: int, min_points: int = 5) -> list[Cell]:
    """Cells of a ``grid`` x ``grid`` raster over [0, 1]^2 holding more than ``min_points`` points,
    in row-major order (row 0 at the top, i.e. large y)."""
    cols = np.minimum((xy01[:, 0] * grid).astype(int), grid - 1)
    rows = np.minimum(((1 - xy01[:, 1]) * grid).astype(int), grid - 1)
    cells = []
    for r in range(grid):
        for c in range(grid):
            members = np.flatnonzero((rows == r) & (cols == c))
            if len(members) > min_points:
                cells.append(Cell(r, c, members))
    return cells


def whitening(vectors: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Carter et al.'s whitening S = inv(A^T A / N) (ridge ``eps`` times the mean eigenvalue)."""
    cov = vectors.T @ vectors / len(vectors)
    ridge = eps * np.trace(cov) / len(cov)
    return np.linalg.inv(cov + ridge * np.eye(len(cov)))


# -- vectors -----------------------------------------------------------------------------------
def attribution_vectors(model: nn.Module, images: torch.Tensor, target: Unit | str, layer: str,
                        batch_size: int = 16, progress: bool | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(f (N,), attribution vectors (N, C)) for images (N, 3, H, W) in [0, 1].

    The vector is ``sum_positions sign(a) * A``: the paper's sum of A for a non-negative (post-ReLU)
    layer; in a layer that can be negative it points where the activation must move to reproduce the
    attribution (as the signed inversion targets of `inversion.signed_targets`)."""
    model = as_image_model(model)
    device = model.device
    fs, vectors = [], []
    with Attributor(model, target, [layer]) as attributor:
        for start in progress_bar(range(0, len(images), batch_size), desc="attribution", unit="batch",
                                  leave=False, progress=progress):
            result = attributor(images[start:start + batch_size].to(device), keep=True)
            part = result.layers[layer]
            fs.append(result.f.cpu())
            vectors.append((torch.sign(part.activation) * part.attribution).sum((2, 3)).cpu())
    return torch.cat(fs).numpy(), torch.cat(vectors).numpy()


def activation_vectors(model: nn.Module, images: torch.Tensor, layer: str, seed: int = 0,
                       batch_size: int = 32) -> np.ndarray:
    """One activation vector (C,) per image at a random spatial position of ``layer``."""
    gen = torch.Generator().manual_seed(seed)
    model = as_image_model(model)
    device = model.device
    out = []
    with LayerTap(model, [layer]) as tap, torch.no_grad():
        for start in range(0, len(images), batch_size):
            act = tap(images[start:start + batch_size].to(device))[layer].float().cpu()
            n, _, h, w = act.shape
            y = torch.randint(h, (n,), generator=gen)
            x = torch.randint(w, (n,), generator=gen)
            out.append(act[torch.arange(n), :, y, x])
    return torch.cat(out).numpy()


def select_images(f: np.ndarray, norms: np.ndarray, per_group: int) -> np.ndarray:
    """Indices of the ``per_group`` largest f, smallest f and largest norms, without duplicates."""
    order_f = np.argsort(-f, kind="stable")
    groups = [order_f[:per_group], order_f[::-1][:per_group], np.argsort(-norms, kind="stable")[:per_group]]
    return np.array(sorted(set(np.concatenate(groups).tolist())), dtype=int)


# -- icons -------------------------------------------------------------------------------------
def icon_transforms() -> Compose:
    """Small-image robustness set for icons: pad 4, jitter 4, slight scale and rotation, noise."""
    return Compose([Pad(4), Jitter(4), Scale([0.95, 1.0, 1.05]), Rotate((-5.0, 5.0)), Jitter(2),
                    Noise(0.01)])


def render_icons(model: nn.Module, layer: str, directions: np.ndarray, size: int = 64, steps: int = 128,
                 batch: int = 64, cossim_pow: float = 2.0, lr: float = 0.05, seed: int = 0,
                 param: str = "fourier", progress: bool | None = None,
                 decay_power: float = ICON_DECAY_POWER) -> torch.Tensor:
    """One icon per direction (K, C), rendered ``batch`` at a time: (K, 3, size, size).

    ``decay_power`` is the Fourier spectrum's 1/f^decay scale (`atlas_icons.ICON_DECAY_POWER`: 1.5,
    low frequencies favoured; 1 is lucid's); it applies to ``param="fourier"`` only."""
    icons = []
    chunks = range(0, len(directions), batch)
    for start in progress_bar(chunks, desc="icons", unit="batch", leave=False, progress=progress):
        part = torch.as_tensor(directions[start:start + batch], dtype=torch.float32)
        objective = obj.alignment(layer, part, cossim_pow)
        config = RenderConfig(steps=steps, lr=lr, size=size, batch=len(part), seed=seed + start)
        options = {"decay_power": decay_power} if param == "fourier" else None
        result = Renderer(model, objective, param, icon_transforms(), config,
                          param_options=options).run(progress=False)
        icons.append(result.images)
    return torch.cat(icons)


def scatter_plot(xy01: np.ndarray, f: np.ndarray, norms: np.ndarray, grid: int, title: str) -> Figure:
    """The atlas' companion scatter: points coloured by f (diverging at 0), sized by vector norm."""
    from matplotlib.colors import TwoSlopeNorm

    bound = max(float(np.abs(f).max()), 1e-6)
    sizes = 6 + 60 * norms / max(float(norms.max()), 1e-12)
    fig = new_figure((6.4, 6))
    ax = fig.subplots()
    points = ax.scatter(xy01[:, 0], xy01[:, 1], c=f, s=sizes, cmap="RdBu_r",
                        norm=TwoSlopeNorm(vmin=-bound, vcenter=0, vmax=bound), edgecolors="k",
                        linewidths=0.2)
    ax.set_xticks(np.linspace(0, 1, grid + 1), minor=True)
    ax.set_yticks(np.linspace(0, 1, grid + 1), minor=True)
    ax.grid(which="minor", linewidth=0.2, alpha=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    fig.colorbar(points, ax=ax, label="f (target unit)")
    fig.tight_layout()
    return fig


def scatter_figure(xy01: np.ndarray, f: np.ndarray, norms: np.ndarray, grid: int, path: str | os.PathLike,
                   title: str) -> None:
    """`scatter_plot` saved as a PNG at ``path`` (atomically)."""
    buffer = io.BytesIO()
    scatter_plot(xy01, f, norms, grid, title).savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


# -- results -----------------------------------------------------------------------------------
@dataclass
class AtlasResult(Rich):
    """Everything an atlas is made of; `save` writes atlas.png, scatter.png, index.html, atlas.json."""

    mode: str
    layer: str
    target: Unit | None
    grid: int
    xy: np.ndarray  # (N, 2) normalized layout of the selected images
    vectors: np.ndarray  # (N, C)
    f: np.ndarray  # (N,) target value of each selected image
    paths: list[Path]  # the selected images
    images: torch.Tensor  # (N, 3, S, S) the selected images, as the model saw them
    cells: list[Cell]
    icons: torch.Tensor  # (K, 3, s, s)
    icon_f: np.ndarray  # (K,) target value on each icon
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def cell_f(self) -> np.ndarray | None:
        """(K,) mean f of the dataset images in each cell (None without a target): the frame colour."""
        return None if self.target is None else cell_f(self.f, [c.members for c in self.cells])

    def image(self) -> Image.Image:
        """The atlas picture: icons framed by their cell's mean f, captions, colour key."""
        return compose_atlas(self.icons, self.cells, self.grid, self.cell_f)

    def title(self) -> str:
        return f"{self.mode} atlas of {self.target or self.layer} through {self.layer}"

    def _view(self) -> View:
        scatter = scatter_plot(self.xy, self.f, np.linalg.norm(self.vectors, axis=1), self.grid, self.title())
        settings = self.settings
        numbers = {"images": settings.get("images", len(self.f)), "laid out": len(self.f),
                   "grid": f"{self.grid}x{self.grid}", "cells": len(self.cells),
                   "min points": settings.get("min_points", "?"), "icon steps": settings.get("steps")}
        notes = [n for n in (settings.get("hint"), settings.get("warning")) if n]
        atlas = Tile(self.image(), "icon frame and caption: mean f of the cell's images (blue < 0 < red)",
                     side=640)
        layout = Tile(scatter, "points: images, coloured by f, sized by vector norm", plot=True)
        return View(self.title(), numbers, [Section("atlas", [atlas]), Section("layout", [layout])],
                    note="\n".join(notes))

    def save(self, out_dir: str | Path, thumb: int = 72) -> dict[str, Any]:
        out = Path(out_dir)
        (out / "thumbs").mkdir(parents=True, exist_ok=True)
        save_image(self.image(), out / "atlas.png")
        title = self.title()
        scatter_figure(self.xy, self.f, np.linalg.norm(self.vectors, axis=1), self.grid,
                       out / "scatter.png", title)
        (out / "icons").mkdir(exist_ok=True)
        for k, icon in enumerate(self.icons):
            save_image(icon, out / "icons" / f"icon_{k:03d}.png")
        thumbs = []
        for i, image in enumerate(self.images):
            small = Image.fromarray(to_uint8(image)).resize((thumb, thumb), Image.Resampling.BILINEAR)
            name = f"thumbs/{i:04d}.jpg"
            small.save(out / name, quality=85)
            thumbs.append(name)
        frame_f = self.cell_f
        record = {
            "mode": self.mode, "layer": self.layer, "target": str(self.target) if self.target else None,
            "grid": self.grid, "settings": self.settings,
            "cells": [{"row": c.row, "col": c.col, "icon": f"icons/icon_{k:03d}.png",
                       "icon_f": float(self.icon_f[k]),
                       "cell_f": None if frame_f is None else float(frame_f[k]),
                       "members": [{"path": str(self.paths[i]), "f": float(self.f[i]), "thumb": thumbs[i]}
                                   for i in c.members]}
                      for k, c in enumerate(self.cells)],
        }
        atomic_write_bytes(out / "atlas.json", json.dumps(record, indent=2).encode())
        write_page(out / "index.html", record, title)
        return record


def _icon_f(model: nn.Module, icons: torch.Tensor, target: Unit | None) -> np.ndarray:
    if target is None:
        return np.zeros(len(icons))
    if len(icons) == 0:
        return np.zeros(0)
    return attribute(model, icons, target, ["input"]).f.cpu().numpy()


@dataclass
class AtlasConfig:
    """The settings of `build_atlas`: ``mode`` ("attribution" or "activation"); ``grid`` cells per
    side and ``min_points`` per kept cell (None: from the number of images, `atlas_defaults`);
    ``per_group`` images per selection group (attribution atlas); ``icon_size``, ``steps``,
    ``batch``: the icon renders; ``cossim_pow`` (None: 1 for attribution, 2 for activation atlases);
    ``icon_direction`` what an attribution atlas' icons are rendered towards (`ICON_DIRECTIONS`:
    "whitened", "centred" or "mean", see `atlas_icons`); ``icon_decay`` the icons' Fourier 1/f^decay
    (`atlas_icons.ICON_DECAY_POWER`, 1.5; at lucid's 1 icons differ little in pixels); ``seed`` of UMAP,
    the activation sampling
    and the icons."""

    mode: str = "attribution"
    grid: int | None = None
    per_group: int = 100
    min_points: int | None = None
    icon_size: int = 64
    steps: int = 128
    batch: int = 64
    cossim_pow: float | None = None
    icon_direction: str = "whitened"
    icon_decay: float = ICON_DECAY_POWER
    seed: int = 0


def build_atlas(model: nn.Module, images: torch.Tensor, paths: Sequence[Path], layer: str,
                target: Unit | Objective | str | None = None, config: AtlasConfig | None = None, *,
                progress: bool | None = None, **overrides: Any) -> AtlasResult:
    """An attribution atlas (``target`` through ``layer``) or an activation atlas (of ``layer``;
    ``target`` only colours the icon borders) of ``images`` (N, 3, S, S) in [0, 1].

    ``config`` (an `AtlasConfig`; its fields as keywords: ``mode="activation", grid=10``) holds the
    settings. ``grid`` and ``min_points`` default to values from the number of laid-out images
    (`phosphene.inhibition.atlas_defaults`); ``settings["hint"]`` says what to change when few
    cells survive."""
    config = with_overrides(AtlasConfig, config, overrides, "build_atlas")
    model = as_image_model(model)
    mode, grid, per_group, min_points = config.mode, config.grid, config.per_group, config.min_points
    icon_size, steps, batch, cossim_pow, seed = (config.icon_size, config.steps, config.batch,
                                                 config.cossim_pow, config.seed)
    if mode not in MODES:
        raise PhospheneError(f"unknown atlas mode {mode!r}; choose from {', '.join(MODES)}")
    if not 0 < config.icon_decay <= 4:
        raise PhospheneError(f"icon_decay must be in (0, 4], got {config.icon_decay}")
    if config.icon_direction not in ICON_DIRECTIONS:
        raise PhospheneError(f"unknown icon direction {config.icon_direction!r}; "
                             f"choose from {', '.join(ICON_DIRECTIONS)}")
    target = as_unit(target) if target is not None else None
    if mode == "attribution":
        if target is None:
            raise PhospheneError("an attribution atlas needs a target unit (--target LAYER:CHANNEL)")
        f_all, vectors_all = attribution_vectors(model, images, target, layer, progress=progress)
        keep = select_images(f_all, np.linalg.norm(vectors_all, axis=1), per_group)
        vectors, f = vectors_all[keep], f_all[keep]
        directions_of = None  # cell_directions, from all cells at once
        n_neighbors, min_dist, power = 10, 0.1, 1.0
    else:
        keep = np.arange(len(images))
        vectors = activation_vectors(model, images, layer, seed)
        f = (attribute(model, images, target, ["input"]).f.cpu().numpy() if target is not None
             else np.zeros(len(images)))
        white = whitening(vectors)
        directions_of = lambda members: white @ vectors[members].mean(0)  # noqa: E731
        n_neighbors, min_dist, power = 20, 0.01, 2.0
    if len(vectors) < 4:
        raise PhospheneError(f"an atlas needs at least 4 images, got {len(vectors)}")
    grid = auto_grid(len(vectors)) if grid is None else grid
    min_points = auto_min_points(len(vectors)) if min_points is None else min_points
    xy = normalize_layout(umap_layout(vectors, n_neighbors, min_dist, seed))
    cells = bin_layout(xy, grid, min_points)
    hint = sparse_hint(len(vectors), grid, min_points, len(cells))
    if not cells:
        raise PhospheneError(f"no grid cell holds more than {min_points} images: {hint}")
    directions = (cell_directions(vectors, [c.members for c in cells], config.icon_direction)
                  if directions_of is None else np.stack([directions_of(c.members) for c in cells]))
    icons = render_icons(model, layer, directions, icon_size, steps, batch,
                         cossim_pow if cossim_pow is not None else power, seed=seed, progress=progress,
                         decay_power=config.icon_decay)
    settings = {"per_group": per_group, "min_points": min_points, "icon_size": icon_size, "steps": steps,
                "batch": batch, "cossim_pow": cossim_pow if cossim_pow is not None else power,
                "icon_direction": config.icon_direction if mode == "attribution" else "whitened mean",
                "icon_decay": config.icon_decay,
                "n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed, "images": len(images),
                "selected": len(keep), "hint": hint,
                "warning": (completeness_warnings(model, target.layer, [layer]).get(layer)
                            if mode == "attribution" else None)}
    return AtlasResult(mode, layer, target, grid, xy, vectors, f, [Path(paths[i]) for i in keep],
                       images[keep], cells, icons, _icon_f(model, icons, target), settings)
