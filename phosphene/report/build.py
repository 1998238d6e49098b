"""`build_report`: a mining run in, a static site out, one stage at a time per layer.

Stages per layer (each a progress bar, or plain lines on stderr without a terminal; each skips the
units it already did): visualize (batched `render`), exemplars (from the run), inhibition (probe
set, one backward per unit), accentuate (batched `accentuate`), the optional atlas, the atoms behind
each unit's top images (for a layer with a dictionary attached, `report.atoms`), then pages. All
input is checked before anything is written; every file is written atomically, so a killed
build restarts where it stopped.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..layers.heap import heap_kept, release_memory_to_system
from ..models import load_model
from ._api import Dictionary, PhospheneError, build_atlas, frozen, load_source, mining, stage_line
from .accentuations import accentuations
from .atoms import atom_facts, atom_list, attached_for, site_records, unit_atom_terms, unit_atoms
from .config import SITE_FILE, ReportSettings, check_site, fingerprint_of, resolve_units, run_identity
from .exemplars import drop_images, exemplars
from .inhibition import inhibition
from .layout import LayerFiles, write_json
from .neighbours import neighbours
from .polysemanticity import polysemanticity
from .site import copy_static, environment, unit_data, write_index, write_layer, write_unit
from .units import visualize

STAGES = ("visualize", "exemplars", "inhibition", "accentuate", "polysemanticity", "atlas", "atoms", "pages")


@dataclass
class ReportResult:
    """What `build_report` did: the site, the units per layer it holds, wall seconds and process CPU
    seconds (all threads) per stage, and how many units it computed (not skipped) in this call."""

    site: Path
    units: dict[str, list[int]]
    seconds: dict[str, float] = field(default_factory=dict)
    computed: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.site / "index.html"

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall and process CPU time of the ``with`` body to ``stage``."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - wall
            self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + time.process_time() - cpu

    def stage_table(self) -> str:
        """The per-stage table: wall s, CPU s and CPU share per stage, then the total (per unit too)."""
        cpu_total = sum(self.cpu_seconds.values())
        wall_total = sum(self.seconds.values())
        lines = [f"  {'stage':<16}{'wall s':>9}{'cpu s':>9}{'cpu %':>7}"]
        for stage, wall in self.seconds.items():
            cpu = self.cpu_seconds.get(stage, 0.0)
            share = cpu / cpu_total if cpu_total else 0.0
            lines.append(f"  {stage:<16}{wall:9.1f}{cpu:9.1f}{share:7.0%}")
        lines.append(f"  {'total':<16}{wall_total:9.1f}{cpu_total:9.1f}{1 if cpu_total else 0:7.0%}")
        if self.computed:
            per = self.computed
            lines.append(f"  {'per unit':<16}{wall_total / per:9.2f}{cpu_total / per:9.2f}")
        return "\n".join(lines)


def _open_model(model: nn.Module | str | None, run: mining.MiningRun, weights: str | None,
                device: str | None) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    name = model or run.model_name
    if name != run.model_name:
        raise PhospheneError(f"{run.root} was mined with {run.model_name}, not {name}; "
                             f"pass --model {run.model_name}")
    return load_model(name, weights=weights, device=device)


def release_memory() -> None:
    """Free what a stage left behind: collect garbage and, with glibc, hand freed heap pages back to
    the system (`malloc_trim`), so one stage's peak is not carried into the next."""
    gc.collect()
    release_memory_to_system()  # not glibc (macOS, Windows, musl): the allocator keeps them


def _atlas(model: nn.Module, run: mining.MiningRun, layer: str, settings: ReportSettings,
           files: LayerFiles, progress: bool | None) -> None:
    if not settings.atlas or (files.root / "atlas" / "atlas.json").is_file():
        return
    source = load_source(run.root, model)
    # grid and min_points adapt to the number of images (`atlas_defaults`), so small runs get an atlas too
    result = build_atlas(model, source.images, source.paths, layer, None, mode="activation",
                         icon_size=64, steps=max(16, settings.steps // 2), seed=settings.seed,
                         progress=progress)
    result.save(files.root / "atlas")


def _layer_stages(net: nn.Module, run: mining.MiningRun, layer: str, units: list[int],
                  settings: ReportSettings, files: LayerFiles, show: bool | None,
                  result: ReportResult) -> None:
    """Run every stage of one layer, adding each stage's wall and CPU time to ``result``."""
    stages = (("visualize", visualize, (net, layer)), ("exemplars", exemplars, (run, layer)),
              ("inhibition", inhibition, (net, run, layer)), ("accentuate", accentuations, (net, run, layer)),
              ("polysemanticity", polysemanticity, (net, run, layer)))
    for stage, work, head in stages:
        with result.timed(stage):
            work(*head, units, settings, files, show)
            release_memory()
    with result.timed("atlas"):
        _atlas(net, run, layer, settings, files, show)


def relative_to(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``path`` written relative to ``folder`` (``../images``), as the report shows dataset paths;
    absolute when there is no relative path (another drive on Windows)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:
        return str(path)


def _site_record(out: Path) -> dict:
    """The existing site's record, {} when there is none or it is unreadable (`check_site` says so)."""
    try:
        return json.loads((out / SITE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def build_report(run: str | os.PathLike, layers: list[str], out: str | os.PathLike,
                 units: list[int] | None = None, model: nn.Module | str | None = None,
                 settings: ReportSettings | None = None, weights: str | None = None,
                 device: str | None = None, progress: bool | None = None,
                 dictionaries: Sequence[Dictionary | str | os.PathLike] = ()) -> ReportResult:
    """Build (or extend) the report site ``out`` for ``units`` (default: all) of ``layers`` of the
    mining run ``run``. ``model``: a module, a model name, or None for the run's model.
    ``dictionaries`` (files or `Dictionary` objects) are attached to the model for the build, so that
    their atom layers (``_blocks.8.kmeans16``) can be reported; without them the dictionaries the run
    or the site recorded are attached again (`report.atoms`)."""
    settings = settings or ReportSettings()
    settings.check()
    opened = mining.open(run)
    chosen = resolve_units(opened, list(layers), units)
    out = Path(out)
    net = _open_model(model, opened, weights, device)
    previous = _site_record(out)
    every_layer = list(dict.fromkeys([*chosen, *previous.get("layers", {})]))
    with attached_for(net, opened, every_layer, dictionaries, previous) as atoms:
        return _build(opened, str(run), chosen, out, net, settings, weights, atoms, progress)


def _build(opened: mining.MiningRun, run: str, chosen: dict[str, list[int]], out: Path, net: nn.Module,
           settings: ReportSettings, weights: str | None, atoms: dict[str, Dictionary],
           progress: bool | None) -> ReportResult:
    model_name = getattr(net, "name", None) or type(net).__name__
    identity = run_identity(opened, model_name, weights)
    fingerprint = fingerprint_of(settings, identity)
    record = check_site(out, fingerprint, settings) or {}
    built = {layer: sorted(set(record.get("layers", {}).get(layer, [])) | set(us))
             for layer, us in {**record.get("layers", {}), **chosen}.items()}
    context = {"model": model_name, "run": run, "out": str(out), "settings": settings,
               "fingerprint": fingerprint, "dictionaries": atoms, "built": built,
               "dataset": {"images": opened.manifest.get("summary", {}).get("n_images"),
                           "root": relative_to(opened.image_root, opened.root), "k": opened.k}}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SITE_FILE, {"fingerprint": fingerprint, "settings": settings.to_dict(),
                                 "identity": identity, "run": run, "layers": record.get("layers", {}),
                                 "dictionaries": {**record.get("dictionaries", {}),
                                                  **site_records(atoms, list(built))},
                                 "format": 1})
    copy_static(out)
    show = progress
    result = ReportResult(out, built, dict.fromkeys(STAGES, 0.0), cpu_seconds=dict.fromkeys(STAGES, 0.0))
    env = environment()
    with frozen(net), _images_dropped(opened), heap_kept():
        for layer, wanted in chosen.items():
            files = LayerFiles(out, layer)
            result.computed += len(files.pending(wanted, "accentuation"))
            _layer_stages(net, opened, layer, wanted, settings, files, show, result)
            with result.timed("atoms"):
                unit_atoms(net, opened, layer, wanted, min(settings.k, opened.k), atoms, files, show)
    with result.timed("pages"):
        _pages(opened, out, built, context, settings, atoms, env, progress)
    site_record = json.loads((out / SITE_FILE).read_text())
    site_record.update(layers=built, last_build={"seconds": result.seconds, "cpu_seconds": result.cpu_seconds,
                                                 "computed": result.computed})
    write_json(out / SITE_FILE, site_record)
    return result


@contextmanager
def _images_dropped(run: mining.MiningRun) -> Iterator[None]:
    try:
        yield
    finally:
        drop_images(run)


def _pages(opened: mining.MiningRun, out: Path, built: dict[str, list[int]], context: dict,
           settings: ReportSettings, atoms: dict[str, Dictionary], env, progress: bool | None) -> None:
    """Every unit page, the layer pages and the index."""
    stage_line(f"report: writing pages for {sum(len(u) for u in built.values())} units", progress)
    layer_entries = []
    for layer, all_units in built.items():
        files = LayerFiles(out, layer)
        near = neighbours(opened, layer, all_units, min(settings.k, opened.k), settings.neighbours)
        atom_layer = atoms.get(layer)
        for unit in all_units:
            data = unit_data(files, unit, context, set(all_units), near[unit])
            data["atom"] = atom_facts(atom_layer, unit, built) if atom_layer is not None else None
            data["atom_terms"] = unit_atom_terms(files, unit, atoms, built)
            write_unit(env, files, data)
        layer_entries.append(write_layer(env, files, all_units, context,
                                         atom_list(atom_layer, all_units) if atom_layer is not None else []))
    write_index(env, out, layer_entries, context)
