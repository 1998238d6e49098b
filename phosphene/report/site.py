"""Writing the pages: jinja2 templates, every page and its JSON written atomically, relative links only.

Pages: ``index.html`` (every layer's unit grid), ``<layer>/index.html`` (atlas, completeness table,
tension distribution; an atom layer's atoms by energy share), ``<layer>/units/NNNN.html`` (one unit
or atom). Each page has its data beside it as
JSON (``index.json``, ``<layer>/layer.json``, ``<layer>/units/NNNN.json``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._api import atomic_write_bytes, scale_legend
from .config import ReportSettings
from .layout import LayerFiles, unit_name, write_json, write_picture
from .polysemanticity import unit_score

PACKAGE = resources.files("phosphene.report")
STATIC = ("report.css", "report.js")


def environment() -> Environment:
    """The template environment (autoescaped HTML, undefined names are errors)."""
    env = Environment(loader=FileSystemLoader(str(PACKAGE / "templates")),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, digits=2: "–" if v is None or v != v else f"{v:.{digits}f}"
    return env


def write_page(env: Environment, template: str, path: Path, context: dict[str, Any]) -> None:
    atomic_write_bytes(path, env.get_template(template).render(**context).encode())


def copy_static(site: Path) -> None:
    """static/report.css, report.js and the φ± colour-scale legend."""
    for name in STATIC:
        atomic_write_bytes(site / "static" / name, (PACKAGE / "static" / name).read_bytes())
    legend = site / "static" / "scale.png"
    if not legend.is_file():
        fig = Figure(figsize=(1.6, 1.6))
        FigureCanvasAgg(fig)
        scale_legend(fig.add_subplot())
        fig.tight_layout()
        fig.canvas.draw()
        write_picture(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(), legend)


def regenerate_command(run: str, layer: str, unit: int, out: str, settings: ReportSettings,
                       model: str, dictionaries: Sequence[str] = ()) -> str:
    """The command that (re)builds this unit's page with the same settings (and dictionary files)."""
    words = ["phosphene", "report", run, "--layers", layer, "--units", str(unit), "--out", out,
             "--model", model]
    for path in dictionaries:
        words += ["--dictionary", path]
    defaults = ReportSettings().to_dict()
    for key, value in settings.to_dict().items():
        if key in ("steps", "size") or value != defaults[key]:
            if isinstance(value, bool):
                words += [f"--{key.replace('_', '-')}"] if value else []
            else:
                text = f"{value:g}" if isinstance(value, float) else str(value)
                words += [f"--{key.replace('_', '-')}", text]
    return shlex.join(words)


def unit_data(files: LayerFiles, unit: int, context: dict[str, Any], built: set[int],
              neighbours: list[dict]) -> dict[str, Any]:
    """Everything a unit page shows, from the unit's stage records."""
    vis, ex = files.read(unit, "visualize"), files.read(unit, "exemplars")
    inh, acc = files.read(unit, "inhibition"), files.read(unit, "accentuation")
    inh = {k: v for k, v in inh.items() if k != "tension_all"}
    natural = ex["best_mean"]["value"]
    return {
        "layer": files.layer, "unit": unit, "name": unit_name(unit), "model": context["model"],
        "visualize": vis, "exemplars": ex, "inhibition": inh, "accentuation": acc,
        "objective": {"visualization": vis["best_value"], "natural": natural,
                      "ratio": vis["best_value"] / natural if natural else None,
                      "natural_path": ex["best_mean"]["path"]},
        "neighbours": [{**n, "href": f"{unit_name(n['unit'])}.html" if n["unit"] in built else None}
                       for n in neighbours],
        "permalink": f"{files.slug}/units/{unit_name(unit)}.html",
        "command": regenerate_command(context["run"], files.layer, unit, context["out"],
                                      context["settings"], context["model"],
                                      _dictionary_files(context.get("dictionaries", {}), files.layer)),
        "atom": None, "atom_terms": [],
        "settings": context["settings"].to_dict(), "fingerprint": context["fingerprint"],
    }


def _dictionary_files(dictionaries: dict[str, Any], layer: str) -> list[str]:
    """The files of the dictionaries a page of ``layer`` needs: its own atoms, or atoms of it."""
    return [str(d.path) for name, d in dictionaries.items()
            if d.path is not None and layer in (name, d.layer)]


def write_unit(env: Environment, files: LayerFiles, data: dict[str, Any]) -> None:
    unit = data["unit"]
    write_json(files.data(unit), data)
    write_page(env, "unit.html.j2", files.page(unit), {
        "u": data, "root": "../../", "data_file": f"{unit_name(unit)}.json",
        "dir": f"{unit_name(unit)}/", "title": f"{files.layer}:{unit}"})


def tension_histogram(tension: list[float], selectivity: list[float], path: Path) -> None:
    """Distributions over the layer's units of the tension score and of selectivity."""
    fig = Figure(figsize=(6.4, 2.4))
    FigureCanvasAgg(fig)
    for i, (values, label, colour) in enumerate(((tension, "unit tension (T of its most tense image)",
                                                  "#9400d3"),
                                                 (selectivity, "selectivity (z of best image)", "#444"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), color=colour)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("units", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    write_picture(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy(), path)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def card(files: LayerFiles, unit: int, prefix: str) -> dict[str, Any]:
    """One unit's entry in a grid: thumbnail, link and the sort keys."""
    inh = files.read(unit, "inhibition")
    return {"unit": unit, "href": f"{prefix}units/{unit_name(unit)}.html",
            "thumb": f"{prefix}units/{unit_name(unit)}/thumb.jpg", "tension": inh["tension"],
            "selectivity": inh["selectivity"], "pearson": inh["pearson"], "spearman": inh["spearman"],
            "probe": inh["probe"], "attr_layer": inh["attr_layer"], "norm_warning": inh.get("norm_warning"),
            "polysemanticity": unit_score(files, unit)}


def write_layer(env: Environment, files: LayerFiles, units: list[int], context: dict[str, Any],
                atoms: list[dict] | None = None) -> dict:
    """The layer page and layer.json (``atoms``: an atom layer's list, `report.atoms.atom_list`);
    returns the layer's entry for the index."""
    cards = [card(files, u, "") for u in units]
    tension_histogram([c["tension"] for c in cards if _finite(c["tension"])],
                      [c["selectivity"] for c in cards if _finite(c["selectivity"])],
                      files.root / "distribution.png")
    atlas = (files.root / "atlas" / "atlas.png").is_file()
    pearson = [c["pearson"] for c in cards if _finite(c["pearson"])]
    record = {"layer": files.layer, "model": context["model"], "units": cards, "atlas": atlas,
              "attr_layer": cards[0]["attr_layer"] if cards else None,
              "norm_warning": cards[0]["norm_warning"] if cards else None,
              "median_pearson": float(np.median(pearson)) if pearson else None, "atoms": atoms or []}
    write_json(files.root / "layer.json", record)
    write_page(env, "layer.html.j2", files.root / "index.html",
               {"L": record, "root": "../", "data_file": "layer.json", "title": files.layer})
    return {"name": files.layer, "slug": files.slug,
            "units": [card(files, u, f"{files.slug}/") for u in units]}


def write_index(env: Environment, site: Path, layers: list[dict], context: dict[str, Any]) -> None:
    record = {"model": context["model"], "run": context["run"], "dataset": context["dataset"],
              "settings": context["settings"].to_dict(), "fingerprint": context["fingerprint"],
              "layers": layers}
    write_json(site / "index.json", record)
    write_page(env, "index.html.j2", site / "index.html",
               {"I": record, "root": "", "data_file": "index.json", "title": context["model"]})
