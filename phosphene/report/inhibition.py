"""Stage 3: excitation, inhibition and tension of every unit on a probe set of dataset images.

The probe set: ``probe`` images of the run (a seeded sample, the run's preprocessing). Each chunk of
images runs forward once to the layer; for every unit, one backward from the unit's channel mean f
down to the attribution layer ℓ (the module just before the layer, `attribution_layer`) gives
A = a_ℓ ⊙ ∂f/∂a_ℓ, so a unit costs one short backward, not a forward. Per unit: E⁺, E⁻, ΣA and f per
image; the tension T = min(E⁺/mean E⁺, E⁻/mean E⁻) (`phosphene.tension`); the unit's *tension* is
the T of its most tense image; completeness is the correlation of ΣA with f; *selectivity* is how
many probe standard deviations the run's best image (by channel mean) lies above the probe mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..inhibition.norm_check import completeness_warnings
from ..layers.attachments import attachments
from ._api import (
    LayerTap,
    Target,
    as_image_model,
    correlations,
    keep_preactivation,
    layer_names,
    mining,
    overlay,
    progress_bar,
    resolve_layer,
    smooth_maps,
    tension_score,
    to_uint8,
    uses_preactivation,
)
from .config import ReportSettings
from .exemplars import images_of
from .layout import LayerFiles, write_picture

STAGE = "inhibition"
CHUNK = 8
VALUES, MAPS = ("f", "e_plus", "e_minus", "total"), ("phi_plus", "phi_minus")


def attribution_layer(model: nn.Module, layer: str) -> str:
    """The module that runs just before ``layer``: its preceding sibling, else its parent's, ...;
    ``input`` when there is none (``_blocks.8`` -> ``_blocks.7``). An atom layer (a linear map of its
    dictionary's layer) is attributed where that layer is (``_blocks.8.kmeans16`` -> ``_blocks.7``)."""
    source = attachments(model).get(layer)
    if source is not None:
        layer = source["layer"]
    names = [n for n in layer_names(model) if n]
    name = layer
    while name:
        parent = name.rpartition(".")[0]
        siblings = [n for n in names if n.rpartition(".")[0] == parent and n != parent]
        if name in siblings and siblings.index(name) > 0:
            return siblings[siblings.index(name) - 1]
        name = parent
    return "input"


def probe_indices(run: mining.MiningRun, n: int, seed: int) -> np.ndarray:
    """A seeded sample of ``n`` usable image indices of the run, sorted."""
    skipped = {i for i, _, _ in run.skipped()}
    usable = np.array([i for i in range(len(run.image_paths())) if i not in skipped])
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(usable, size=min(n, len(usable)), replace=False))


@dataclass
class Probe:
    """Per unit: f, E⁺, E⁻, ΣA (P,) and φ⁺, φ⁻ (P, h, w) on the probe images."""

    indices: np.ndarray
    images: torch.Tensor  # (P, 3, S, S) in [0, 1]
    values: dict[int, dict[str, np.ndarray]]
    maps: dict[int, tuple[torch.Tensor, torch.Tensor]]


def _read_target(model: nn.Module, layer: str):
    """A context that records the value f is read from (the pre-activation of an activation module)."""
    store: dict[str, torch.Tensor] = {}
    handle = None
    if uses_preactivation(model, Target(layer, 0)):
        handle = keep_preactivation(resolve_layer(model, layer), lambda x: store.__setitem__("pre", x))
    return store, handle


def _graph_starts_at(model: nn.Module, attr: str):
    """A forward hook that makes ``attr``'s output a leaf that requires grad, so the forward keeps
    no graph below the attribution layer (the backward stops there anyway): memory for the
    layers after ``attr`` only. None where ``attr`` is not a module (then the input requires grad)."""
    try:
        module = resolve_layer(model, attr)
    except Exception:  # "input" and other special layers
        return None

    def leaf(_module, _inputs, output):
        return output.detach().requires_grad_(True) if isinstance(output, torch.Tensor) else None

    return module.register_forward_hook(leaf)


def measure(model: nn.Module, run: mining.MiningRun, layer: str, attr: str, units: list[int],
            settings: ReportSettings, progress: bool | None) -> Probe:
    """One forward per chunk of probe images, one backward per unit and chunk; the forward keeps its
    graph from the attribution layer on only (`_graph_starts_at`)."""
    indices = probe_indices(run, settings.probe, settings.seed)
    paths = run.image_paths()
    cache = images_of(run)
    images = torch.stack([torch.from_numpy(np.ascontiguousarray(cache.chw(paths[i]))) for i in indices])
    images = images.float() / 255
    device = as_image_model(model).device
    # results written in place into tensors made once (at the first chunk): a few small tensors kept
    # per unit and chunk between the per-unit temporaries grew the heap by ~2 MB per unit and chunk
    kept: dict[str, torch.Tensor] = {}
    store, handle = _read_target(model, layer)
    leaf = _graph_starts_at(model, attr)  # registered before the tap's hooks, so the tap reads the leaf
    bar = progress_bar(total=len(units) * len(range(0, len(images), CHUNK)), desc=f"{layer} inhibition",
                       unit="unit", progress=progress)
    try:
        with LayerTap(model, [layer, attr]) as tap, torch.enable_grad():
            for start in range(0, len(images), CHUNK):
                x = images[start:start + CHUNK].to(device).requires_grad_(leaf is None)
                acts = tap(x)
                out = tap.canonical(layer, store["pre"]) if handle else acts[layer]
                a = acts[attr]
                if not kept:
                    kept.update({key: torch.empty(len(units), len(images), device=a.device)
                                 for key in VALUES})
                    kept.update({key: torch.empty(len(units), len(images), *a.shape[2:], device=a.device)
                                 for key in MAPS})
                rows = slice(start, start + len(x))
                for i, unit in enumerate(units):
                    f = out[:, unit].flatten(1).mean(1)
                    (g,) = torch.autograd.grad(f.sum(), a, retain_graph=True)
                    with torch.no_grad():
                        share = (a * g).flatten(1)  # A = a ⊙ ∂f/∂a per image
                        kept["f"][i, rows] = f.float()
                        kept["e_plus"][i, rows] = share.clamp(min=0).sum(1).float()
                        kept["e_minus"][i, rows] = (-share).clamp(min=0).sum(1).float()
                        kept["total"][i, rows] = share.sum(1).float()
                        kept["phi_plus"][i, rows] = (a * g.clamp(min=0)).sum(1).float()
                        kept["phi_minus"][i, rows] = (a * (-g).clamp(min=0)).sum(1).float()
                    bar.update()
    finally:
        bar.close()
        for hook in (handle, leaf):
            if hook is not None:
                hook.remove()
    kept = {key: value.cpu() for key, value in kept.items()}  # one copy to the host, not one per unit
    values = {unit: {k: kept[k][i].double().numpy() for k in VALUES} for i, unit in enumerate(units)}
    maps = {unit: (kept["phi_plus"][i], kept["phi_minus"][i]) for i, unit in enumerate(units)}
    return Probe(indices, images, values, maps)


def scatter(e_plus: np.ndarray, e_minus: np.ndarray, f: np.ndarray, mtis: np.ndarray, path) -> None:
    """E⁺ vs E⁻ per probe image coloured by f (blue < 0 < red), the MTIs outlined."""
    from matplotlib.colors import TwoSlopeNorm

    fig = Figure(figsize=(3.4, 3.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bound = max(float(np.abs(f).max()), 1e-6)
    points = ax.scatter(e_plus, e_minus, c=f, cmap="RdBu_r", s=10, edgecolors="none",
                        norm=TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound))
    ax.scatter(e_plus[mtis], e_minus[mtis], s=60, facecolors="none", edgecolors="#9400d3", marker="D",
               linewidths=1.3, label="MTIs")
    ax.set_xlabel("E⁺ (excitation)", fontsize=8)
    ax.set_ylabel("E⁻ (inhibition)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    bar = fig.colorbar(points, ax=ax, shrink=0.85)
    bar.set_label("f (the unit)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas = fig.canvas
    canvas.draw()
    write_picture(np.asarray(canvas.buffer_rgba())[..., :3].copy(), path)


def unit_record(run: mining.MiningRun, layer: str, unit: int, probe: Probe, settings: ReportSettings,
                files: LayerFiles, attr: str, exclude: set[int]) -> dict:
    """Write the unit's scatter and MTI pictures; its inhibition record."""
    v = probe.values[unit]
    t = tension_score(v["e_plus"], v["e_minus"])
    order = np.lexsort((probe.indices, -t))
    mtis = order[:settings.mtis]
    pearson, spearman = correlations(v["total"], v["f"])
    best = run.top(layer, unit, 1, by="mean")[0].value
    spread = float(np.std(v["f"]))
    selectivity = (best - float(np.mean(v["f"]))) / spread if spread > 0 else 0.0
    folder = files.unit_dir(unit)
    scatter(v["e_plus"], v["e_minus"], v["f"], mtis, folder / "scatter.png")
    plus, minus = smooth_maps(probe.maps[unit][0][mtis], probe.maps[unit][1][mtis], probe.images.shape[-1])
    paths = run.image_paths()
    rows = []
    for j, row in enumerate(mtis):
        image = probe.images[row]
        picture = overlay(image, plus[j], minus[j])
        write_picture(to_uint8(image), folder / f"mti_{j}.jpg")
        write_picture((picture * 255 + 0.5).astype(np.uint8), folder / f"mti_{j}_phi.jpg")
        rows.append({"index": int(probe.indices[row]), "path": paths[probe.indices[row]].name,
                     "f": v["f"][row], "tension": t[row], "e_plus": v["e_plus"][row],
                     "e_minus": v["e_minus"][row], "file": f"mti_{j}.jpg", "phi": f"mti_{j}_phi.jpg"})
    median = float(np.median(v["f"]))
    calm = [r for r in np.argsort(np.abs(v["f"] - median), kind="stable")
            if int(probe.indices[r]) not in exclude][:settings.accent_unrelated]
    return {"attr_layer": attr, "probe": len(probe.indices), "tension": float(t.max()),
            "pearson": pearson, "spearman": spearman, "selectivity": selectivity,
            "f_mean": float(np.mean(v["f"])), "f_std": spread, "scatter": "scatter.png", "mtis": rows,
            "unrelated": [{"index": int(probe.indices[r]), "path": paths[probe.indices[r]].name,
                           "f": v["f"][r]} for r in calm],
            "tension_all": [round(float(x), 4) for x in t]}


def inhibition(model: nn.Module, run: mining.MiningRun, layer: str, units: list[int],
               settings: ReportSettings, files: LayerFiles, progress: bool | None) -> None:
    """Measure the probe set for every unit not done yet and write their records."""
    todo = files.pending(units, STAGE)
    if not todo:
        return
    attr = attribution_layer(model, layer)
    warning = completeness_warnings(model, layer, [attr]).get(attr)  # LayerNorm: ΣA need not be f
    probe = measure(model, run, layer, attr, todo, settings, progress)
    k = min(settings.k, run.k)
    for unit in todo:
        exclude = {e.index for d in ("top", "bottom") for e in run.examples(layer, unit, d, "mean", k)}
        record = unit_record(run, layer, unit, probe, settings, files, attr, exclude)
        files.write(unit, STAGE, {**record, "norm_warning": warning})
