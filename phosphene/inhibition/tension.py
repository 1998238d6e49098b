"""Tension analysis over a dataset: E⁺ vs E⁻ per image, completeness, MEIs, MIIs and MTIs.

Per image (every usable file of a folder or of a mining run) and attribution layer ℓ: f, E⁺, E⁻,
their L2 variants and ΣA (see `phosphene.attribution`).

**Tension score** (what MTIs are ranked by), per layer:

    T = min(E⁺ / mean(E⁺), E⁻ / mean(E⁻))      (means over the dataset)

An image is tense when it is *both* strongly excited and strongly inhibited. Dividing by the dataset
mean puts the two on one scale (E⁻ is often several times E⁺ or the reverse), and the minimum is
large only when both are: T ≥ 2 means at least twice the typical excitation *and* twice the typical
inhibition. MTIs are the images with the largest T at the primary (first) attribution layer; MEIs /
MIIs are those with the largest / smallest f.

**Completeness**: Pearson and Spearman correlation over images of E⁺ - E⁻ (= ΣA) with f, per layer
(and of E⁺₂ - E⁻₂ for the L2 variant, which is not expected to add up to f), beside its scale, mean
|E⁺ - E⁻| / mean |f| (about 1 when ΣA ≈ f). A scale near 0 (`attribution.SUM_ZERO`) means ΣA ≈ 0:
a correlation of round-off with f, flagged with a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from ..attribution import AttributionResult, Attributor, completeness_scale, concat, sum_zero_warning
from ..errors import PhospheneError
from ..io.display import Rich, Section, Tile, View, tiles
from ..io.images import atomic_write_bytes
from ..io.progress import progress_bar
from ..mining.dataset import Preprocessing, batch_loader, decode_image
from ..mining.source import image_source
from ..mining.store import write_parquet
from ..models.preprocess import spec_for
from ..models.wrapper import as_image_model
from ..objectives import Objective
from ..units import Unit, as_unit
from .categories import (
    DESCRIPTIONS,
    CategoryThresholds,
    categorize,
    category_counts,
    category_examples,
    map_overlap,
)
from .norm_check import completeness_warnings
from .superposition import Dictionary, Superposition, SuperpositionCheck, diagnose, superposition_summary

SELECTIONS = ("mei", "mii", "mti")
QUANTITIES = ("e_plus", "e_minus", "e_plus_l2", "e_minus_l2", "total")


def tension_score(e_plus: np.ndarray, e_minus: np.ndarray) -> np.ndarray:
    """T = min(E⁺/mean E⁺, E⁻/mean E⁻) per image (N,)."""
    scale_plus = max(float(np.mean(e_plus)), 1e-12)
    scale_minus = max(float(np.mean(e_minus)), 1e-12)
    return np.minimum(e_plus / scale_plus, e_minus / scale_minus)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(Pearson, Spearman) correlation of two (N,) arrays; NaN when either is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan"), float("nan")
    pearson = float(np.corrcoef(x, y)[0, 1])
    spearman = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    return pearson, spearman


@dataclass
class TensionTable(Rich):
    """Per-image results: ``index`` (N,) dataset indices, ``paths``, ``f`` (N,), and per layer
    ``values[layer][quantity]`` (N,) for quantity in `QUANTITIES`. In Jupyter it shows the E⁺/E⁻
    scatter, completeness and its MEIs, MIIs and MTIs (`phosphene.display`)."""

    target: Unit
    layers: list[str]
    index: np.ndarray
    paths: list[str]
    f: np.ndarray
    values: dict[str, dict[str, np.ndarray]]
    root: Path | None = None
    preprocessing: Preprocessing | None = None
    warnings: dict[str, str] = field(default_factory=dict)  # layer -> normalization on its path
    overlap: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> φ⁺/φ⁻ overlap (N,)
    thresholds: CategoryThresholds = field(default_factory=CategoryThresholds)

    @classmethod
    def from_result(cls, result: AttributionResult, index: Sequence[int], paths: Sequence[str]):
        values = {name: {q: getattr(la, q).cpu().double().numpy() for q in QUANTITIES}
                  for name, la in result.layers.items()}
        return cls(result.target, list(result.layers), np.asarray(index, dtype=np.int64), list(paths),
                   result.f.cpu().double().numpy(), values)

    @property
    def primary(self) -> str:
        return self.layers[0]

    def tension(self, layer: str | None = None) -> np.ndarray:
        v = self.values[layer or self.primary]
        return tension_score(v["e_plus"], v["e_minus"])

    def categories(self, layer: str | None = None) -> np.ndarray:
        """Each image's tension category at ``layer`` (`phosphene.inhibition.categories`); needs the
        map overlap, which `compute_tension` measures."""
        name = layer or self.primary
        if name not in self.overlap:
            raise PhospheneError(f"no φ⁺/φ⁻ overlap for {name}: compute the table with compute_tension")
        v = self.values[name]
        return categorize(v["e_plus"], v["e_minus"], self.overlap[name], self.thresholds)

    def select(self, kind: str, n: int, layer: str | None = None) -> np.ndarray:
        """Row positions of the ``n`` MEIs (largest f), MIIs (smallest f) or MTIs (largest T)."""
        if kind == "mei":
            keys = -self.f
        elif kind == "mii":
            keys = self.f
        elif kind == "mti":
            keys = -self.tension(layer)
        else:
            raise PhospheneError(f"selection must be one of {SELECTIONS}")
        return np.lexsort((self.index, keys))[:n]

    def completeness(self) -> list[dict]:
        """One row per (layer, variant): Pearson/Spearman of E⁺ - E⁻ with f, its scale (mean |E⁺ - E⁻|
        / mean |f|) and whether ΣA ≈ 0 (L1 only)."""
        rows = []
        for name in self.layers:
            v = self.values[name]
            for variant, sum_ in (("l1", v["e_plus"] - v["e_minus"]),
                                  ("l2", v["e_plus_l2"] - v["e_minus_l2"])):
                pearson, spearman = correlations(sum_, self.f)
                scale = completeness_scale(sum_, self.f)
                zero = variant == "l1" and sum_zero_warning(name, scale) is not None
                rows.append({"layer": name, "variant": variant, "pearson": pearson, "spearman": spearman,
                             "scale": scale, "sum_zero": zero, "n": len(self.f),
                             "warning": self.warnings.get(name)})
        return rows

    def to_arrow(self) -> pa.Table:
        columns = {"index": pa.array(self.index, pa.int64()), "path": pa.array(self.paths, pa.string()),
                   "f": pa.array(self.f, pa.float64())}
        for name in self.layers:
            for quantity in QUANTITIES:
                columns[f"{name}/{quantity}"] = pa.array(self.values[name][quantity], pa.float64())
            columns[f"{name}/tension"] = pa.array(self.tension(name), pa.float64())
            if name in self.overlap:
                columns[f"{name}/overlap"] = pa.array(self.overlap[name], pa.float64())
                columns[f"{name}/category"] = pa.array(list(self.categories(name)), pa.string())
        return pa.table(columns)

    def records(self) -> list[dict]:
        return self.to_arrow().to_pylist()

    def title(self) -> str:
        return f"tension of {self.target} ({self.target.position}), {len(self.f)} images"

    def numbers(self) -> dict[str, object]:
        """Key numbers: images, layers, share of f > 0, max tension, completeness r per layer."""
        completeness = {f"r(E⁺-E⁻, f) {r['layer']}": r["pearson"] for r in self.completeness()
                        if r["variant"] == "l1"}
        return {"images": len(self.f), "through": ", ".join(self.layers),
                "f > 0": f"{np.mean(self.f > 0):.0%}", "max T": float(self.tension().max()), **completeness}

    def _view(self, n: int = 8) -> View:
        from . import tension_plots as plots  # matplotlib, imported when a picture is drawn

        primary, tension = self.values[self.primary], self.tension()
        selections = {kind: self.select(kind, min(n, len(self.f))) for kind in SELECTIONS}
        scatter = plots.scatter_plot({la: self.values[la]["e_plus"] for la in self.layers},
                                     {la: self.values[la]["e_minus"] for la in self.layers}, self.f,
                                     selections, self.title())
        sections = [Section("E⁺ vs E⁻ per image", [Tile(scatter, plot=True, side=560)])]
        if self.root is not None and self.preprocessing is not None:
            for kind, rows in selections.items():
                images = load_selected([self.root / self.paths[i] for i in rows], self.preprocessing)
                captions = [f"f {self.f[i]:.2f}  T {tension[i]:.2f}\nE⁺ {primary['e_plus'][i]:.1f}  "
                            f"E⁻ {primary['e_minus'][i]:.1f}" for i in rows]
                sections.append(Section(CAPTIONS[kind], tiles(images, captions)))
        warnings = "; ".join(f"{la}: {w}" for la, w in self.warnings.items() if w)
        return View(self.title(), self.numbers(), sections, note=warnings)


def compute_tension(model: nn.Module, source: str | os.PathLike, target: Unit | Objective | str,
                    layers: Sequence[str], batch_size: int = 16, num_workers: int = 2,
                    size: int | None = None, progress: bool | None = None,
                    thresholds: CategoryThresholds | None = None) -> TensionTable:
    """Attribute ``target`` through ``layers`` for every usable image of ``source`` (an image folder
    or a mining run, whose image list and preprocessing are then used), with the overlap of each
    image's φ⁺ and φ⁻ maps per layer (for the tension categories, ``thresholds``)."""
    model, target = as_image_model(model), as_unit(target)
    paths, root, prep, run_model = image_source(source)
    name = model.name
    if run_model is not None and run_model != name:
        raise PhospheneError(f"{source} was mined with {run_model}, not {name}; pass --model {run_model}")
    if prep is None or size is not None:
        prep = Preprocessing(model.side(size), spec_for(model).crop_fraction)
    device = model.device
    results, index, overlaps = [], [], {name: [] for name in layers}
    with Attributor(model, target, layers) as attributor:
        loader = batch_loader(paths, prep, batch_size, num_workers=num_workers)
        for batch in progress_bar(loader, desc="attribution", unit="batch", progress=progress):
            if len(batch.indices):
                result = attributor(batch.images.to(device).float().div_(255), maps=True)
                for name, part in result.layers.items():  # keep the overlap, not the maps
                    overlaps[name].append(map_overlap(part.phi_plus, part.phi_minus).cpu())
                    part.phi_plus = part.phi_minus = None
                results.append(result)
                index.extend(batch.indices.tolist())
    if not results:
        raise PhospheneError(f"none of the {len(paths)} files of {source} could be read")
    relative = [paths[i].relative_to(root).as_posix() for i in index]
    table = TensionTable.from_result(concat(results), index, relative)
    table.root, table.preprocessing = root, prep
    table.overlap = {name: torch.cat(parts).double().numpy() for name, parts in overlaps.items()}
    table.thresholds = thresholds or CategoryThresholds()
    if isinstance(target, Unit):
        table.warnings = completeness_warnings(model, target.layer, layers)
    for name in table.layers:
        v = table.values[name]
        zero = sum_zero_warning(name, completeness_scale(v["e_plus"] - v["e_minus"], table.f))
        if zero:
            table.warnings[name] = f"{table.warnings[name]}; {zero}" if name in table.warnings else zero
    return table


def save_table(table: TensionTable, out: Path, selections: dict[str, np.ndarray],
               superposition: Superposition | None = None) -> None:
    """tension.parquet (one row per image) and tension.json (summary, selections, rows; with
    ``superposition``, the diagnostic of the MTIs)."""
    write_parquet(out / "tension.parquet", table.to_arrow())
    summary = {
        "target": str(table.target), "position": table.target.position,
        "preactivation": table.target.preactivation, "attribution_layers": table.layers,
        "n_images": len(table.f),
        "tension_score": "T = min(E+/mean(E+), E-/mean(E-)) at the primary attribution layer "
                         f"({table.primary}); MTIs = largest T",
        "completeness": table.completeness(),
        "warnings": table.warnings,
        **({"categories": _category_summary(table)} if table.overlap else {}),
        **({"superposition": superposition_summary(superposition,
                                                   [table.paths[i] for i in selections["mti"]])}
           if superposition is not None else {}),
        "selections": {kind: [{"index": int(table.index[i]), "path": table.paths[i], "f": float(table.f[i]),
                               "tension": float(table.tension()[i])} for i in rows]
                       for kind, rows in selections.items()},
        "images": table.records(),
    }
    atomic_write_bytes(out / "tension.json", (json.dumps(summary, indent=1, default=float) + "\n").encode())


def _category_summary(table: TensionTable) -> dict:
    return {"layer": table.primary, "thresholds": table.thresholds.to_dict(),
            "definition": "phosphene.inhibition.categories: none if E+/mean and E-/mean < low; tense "
                          "(T >= tense) split by the overlap of the phi+/phi- maps into spatial (< overlap) "
                          "and channel; otherwise mei (E+ dominates) or mii",
            "descriptions": DESCRIPTIONS,
            "counts": category_counts(table.categories()),
            "counts_per_layer": {name: category_counts(table.categories(name)) for name in table.overlap}}


def save_completeness(rows: Sequence[dict], path: Path) -> None:
    lines = ["layer,variant,pearson,spearman,scale,n"]
    lines += [f"{r['layer']},{r['variant']},{r['pearson']:.6f},{r['spearman']:.6f},{r['scale']:.6g},{r['n']}"
              for r in rows]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


@dataclass
class TensionReport(Rich):
    """What `tension_report` wrote: the table, the selected rows per kind, the output folder. In
    Jupyter it shows the pictures it wrote (with the φ⁺/φ⁻ maps)."""

    table: TensionTable
    selections: dict[str, np.ndarray]
    out: Path
    files: list[str]
    superposition: Superposition | None = None

    def _view(self) -> View:
        plots_ = {"scatter.png": ("E⁺ vs E⁻ per image", 560), "completeness.png": ("completeness", 480),
                  "categories.png": ("tension categories", 480),
                  "superposition.png": ("superposition diagnostic of the MTIs", 700)}
        grids = {**{f"{kind}.png": (CAPTIONS[kind], 900) for kind in SELECTIONS},
                 "categories_examples.png": ("examples per tension category", 900)}
        sections = [Section(title, [Tile(self.out / name, plot=name in plots_, side=side)])
                    for name, (title, side) in {**plots_, **grids}.items() if (self.out / name).is_file()]
        warnings = "; ".join(f"{la}: {w}" for la, w in self.table.warnings.items() if w)
        return View(self.table.title(), {**self.table.numbers(), "folder": str(self.out)}, sections,
                    note=warnings)


CAPTIONS = {"mei": "MEIs: largest f", "mii": "MIIs: smallest f",
            "mti": "MTIs: largest tension T = min(E⁺/mean E⁺, E⁻/mean E⁻)"}


def tension_report(model: nn.Module, source: str | os.PathLike, target: Unit | Objective | str,
                   layers: Sequence[str], out: str | os.PathLike, n: int = 8, batch_size: int = 16,
                   num_workers: int = 2, size: int | None = None, progress: bool | None = None,
                   thresholds: CategoryThresholds | None = None,
                   superposition: SuperpositionCheck | None = None) -> TensionReport:
    """Run `compute_tension` and write scatter.png, completeness.csv/.png, mei.png, mii.png, mti.png,
    categories.png, categories_examples.png, tension.parquet and tension.json into ``out``. φ maps
    and categories (with ``thresholds``) are those of the first attribution layer. With a
    ``dictionary`` learned at one of the attribution layers, also the superposition diagnostic of
    the MTIs (`phosphene.inhibition.superposition`): superposition.png and tension.json's
    ``superposition``."""
    from . import tension_plots as plots  # matplotlib, imported when pictures are drawn

    if n < 1:
        raise PhospheneError("--n must be at least 1")
    model, target = as_image_model(model), as_unit(target)
    if superposition is not None:
        _check_dictionary(model, superposition.dictionary, layers)
    table = compute_tension(model, source, target, layers, batch_size, num_workers, size, progress,
                            thresholds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = min(n, len(table.f))
    selections = {kind: table.select(kind, n) for kind in SELECTIONS}
    diagnostic = None
    if superposition is not None:
        diagnostic = _superposition(model, table, superposition, selections["mti"], out)
    save_table(table, out, selections, diagnostic)
    rows = table.completeness()
    save_completeness(rows, out / "completeness.csv")
    title = f"{table.target} ({table.target.position}), {len(table.f)} images"
    plots.scatter_plot({la: table.values[la]["e_plus"] for la in table.layers},
                       {la: table.values[la]["e_minus"] for la in table.layers}, table.f, selections,
                       title, out / "scatter.png")
    plots.completeness_plot(rows, f"completeness: {title}", out / "completeness.png", table.warnings)
    device = model.device
    tension = table.tension()
    with Attributor(model, target, [table.primary]) as attributor:
        for kind, chosen in selections.items():
            images = load_selected([table.root / table.paths[i] for i in chosen], table.preprocessing)
            maps = attributor(images.to(device), maps=True).layers[table.primary]
            captions = [f"f {table.f[i]:.2f}  T {tension[i]:.2f}\n"
                        f"E⁺ {table.values[table.primary]['e_plus'][i]:.1f} "
                        f"E⁻ {table.values[table.primary]['e_minus'][i]:.1f}" for i in chosen]
            plots.example_grid(images, maps.phi_plus, maps.phi_minus, captions,
                               f"{CAPTIONS[kind]} — {title}; maps through {table.primary}",
                               out / f"{kind}.png")
        _category_pictures(table, attributor, min(n, 4), title, out)
    files = ["scatter.png", "completeness.csv", "completeness.png", "mei.png", "mii.png", "mti.png",
             "categories.png", "categories_examples.png", "tension.parquet", "tension.json"]
    if diagnostic is not None:
        files.append("superposition.png")
    return TensionReport(table, selections, out, files, diagnostic)


def _check_dictionary(model: nn.Module, dictionary: Dictionary, layers: Sequence[str]) -> None:
    """`PhospheneError` unless ``dictionary`` fits the model and one of the attribution layers."""
    dictionary.check_model(as_image_model(model).name)
    if dictionary.layer not in layers:
        raise PhospheneError(f"the dictionary {dictionary.name} was learned at {dictionary.layer}, which is "
                             f"not an attribution layer here; add --attr-layer {dictionary.layer}")


def _superposition(model: nn.Module, table: TensionTable, check: SuperpositionCheck, rows: np.ndarray,
                   out: Path) -> Superposition:
    """The diagnostic of the MTIs ``rows`` and its figure, superposition.png."""
    from .superposition_plots import superposition_plot

    images = load_selected([table.root / table.paths[i] for i in rows], table.preprocessing)
    labels = [f"{Path(table.paths[i]).name[:22]}\nT {table.tension()[i]:.2f}" for i in rows]
    dictionary = check.dictionary
    result = diagnose(model, images, table.target, dictionary, check.threshold, labels)
    superposition_plot(result, images, f"superposition diagnostic of the MTIs of {table.target} "
                       f"({len(rows)} largest T at {table.primary}); atom attribution through "
                       f"{dictionary.layer}", out / "superposition.png")
    return result


def _category_pictures(table: TensionTable, attributor: Attributor, n: int, title: str, out: Path) -> None:
    """categories.png (E⁺ vs E⁻ by category) and categories_examples.png (up to ``n`` per category)."""
    from .category_plots import category_panel, category_scatter

    v, categories = table.values[table.primary], table.categories()
    counts = category_counts(categories)
    category_scatter(v["e_plus"], v["e_minus"], categories, table.thresholds,
                     f"tension categories — {title}; through {table.primary}", out / "categories.png")
    images, plus, minus, captions = {}, {}, {}, {}
    for name, rows in category_examples(categories, v["e_plus"], v["e_minus"], n).items():
        if len(rows) == 0:
            continue
        images[name] = load_selected([table.root / table.paths[i] for i in rows], table.preprocessing)
        maps = attributor(images[name].to(as_image_model(attributor.model).device), maps=True)
        plus[name], minus[name] = maps.layers[table.primary].phi_plus, maps.layers[table.primary].phi_minus
        captions[name] = [f"E⁺ {v['e_plus'][i]:.1f} E⁻ {v['e_minus'][i]:.1f}\noverlap "
                          f"{table.overlap[table.primary][i]:.2f}" for i in rows]
    category_panel(images, plus, minus, captions, counts,
                   f"examples per category — {title}; maps through {table.primary}",
                   out / "categories_examples.png")


def load_selected(paths: Sequence[Path], prep: Preprocessing) -> torch.Tensor:
    """(N, 3, S, S) images in [0, 1] for ``paths`` (already known to decode)."""
    return torch.stack([torch.from_numpy(decode_image(p, prep)).float() / 255 for p in paths])
