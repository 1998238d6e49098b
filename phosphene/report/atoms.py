"""Atoms in a report: which dictionaries a build attaches, the facts of an atom page, the atom list
of an atom layer's page, and the stage that finds the atoms behind each unit's top activations.

A mining run of an atom layer (``mine --dictionary F --layers _blocks.8.kmeans16``) records each
dictionary's file and SHA-256 (``config.dictionaries``); so does the site (``report.json``). A build
attaches, for every requested atom layer, the dictionary given to it (``--dictionary``), else the one
the site recorded, else the one the run recorded, and refuses, in one line, a file whose SHA-256
differs from what the run or the site recorded (the atoms would not be the ones mined).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ._api import (
    Dictionary,
    PhospheneError,
    attach,
    attached_dictionaries,
    detach,
    layer_names,
    load_dictionary,
    mining,
    progress_bar,
    unit_atoms_from_activations,
)
from .config import layer_slug
from .layout import LayerFiles, unit_name

STAGE = "atoms"  # the stage record of a unit: atoms_<dictionary name>.json
SHOWN = 5  # atoms listed per unit, heaviest units listed per atom


def _recorded(run: mining.MiningRun, site: dict) -> dict[str, list[tuple[str, dict]]]:
    """{atom layer: [(where, {path, sha256})]} from the site's and the run's records."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for where, records in (("the site", site.get("dictionaries", {})),
                           (f"the mining run {run.root}", run.config.get("dictionaries", {}))):
        for layer, record in records.items():
            found.setdefault(layer, []).append((where, record))
    return found


def _check_same(dictionary: Dictionary, layer: str, records: list[tuple[str, dict]]) -> None:
    for where, record in records:
        if record.get("sha256") and dictionary.sha256 and record["sha256"] != dictionary.sha256:
            raise PhospheneError(
                f"the dictionary file {dictionary.path} changed since {where} used it for {layer} (SHA-256 "
                f"{dictionary.sha256[:12]}…, recorded {record['sha256'][:12]}…); restore it, or mine and "
                "report the new atoms into new folders")


def choose(net: nn.Module, run: mining.MiningRun, layers: Sequence[str],
           given: Sequence[Dictionary | str | os.PathLike], site: dict) -> list[Dictionary]:
    """The dictionaries to attach to ``net`` for ``layers`` (see the module docstring); checks them."""
    loaded = [d if isinstance(d, Dictionary) else load_dictionary(d) for d in given]
    by_layer = {d.unit_layer: d for d in loaded}
    recorded = _recorded(run, site)
    present = attached_dictionaries(net)
    for layer in layers:
        if layer in by_layer or layer in present or layer not in recorded:
            continue
        paths = [r["path"] for _, r in recorded[layer] if r.get("path")]
        if not paths or not Path(paths[0]).is_file():
            raise PhospheneError(f"{layer} holds the atoms of a dictionary whose file is gone "
                                 f"({paths[0] if paths else 'never saved'}); pass it with --dictionary FILE")
        by_layer[layer] = load_dictionary(paths[0])
    for layer, dictionary in {**present, **by_layer}.items():
        _check_same(dictionary, layer, recorded.get(layer, []))
    return [d for layer, d in by_layer.items() if layer not in present]


@contextlib.contextmanager
def attached_for(net: nn.Module, run: mining.MiningRun, layers: Sequence[str],
                 given: Sequence[Dictionary | str | os.PathLike], site: dict
                 ) -> Iterator[dict[str, Dictionary]]:
    """Attach what `choose` picks for the ``with`` block (detached after); yields every dictionary the
    model then carries, by atom layer. A layer the model still lacks is a one-line error."""
    chosen = choose(net, run, layers, given, site)
    done: list[Dictionary] = []
    try:
        for dictionary in chosen:
            attach(net, dictionary)
            done.append(dictionary)
        known = set(layer_names(net))
        missing = [layer for layer in layers if layer not in known]
        if missing:
            raise PhospheneError(f"{missing[0]} is not a layer of the model; if it is a dictionary's atom "
                                 "layer (mine --dictionary FILE), pass the same --dictionary FILE")
        yield attached_dictionaries(net)
    finally:
        for dictionary in reversed(done):
            detach(net, dictionary)


def site_records(dictionaries: dict[str, Dictionary], layers: Sequence[str]) -> dict[str, dict]:
    """What the site records of the dictionaries of ``layers``: {atom layer: {path, sha256, name}}."""
    return {layer: {"path": None if d.path is None else str(Path(d.path).resolve()), "sha256": d.sha256,
                    "name": d.name, "layer": d.layer}
            for layer, d in dictionaries.items() if layer in layers}


def _stage(dictionary: Dictionary) -> str:
    return f"{STAGE}_{dictionary.name}"


def unit_atoms(net: nn.Module, run: mining.MiningRun, layer: str, units: list[int], k: int,
               dictionaries: dict[str, Dictionary], files: LayerFiles, progress: bool | None) -> None:
    """For each dictionary of ``layer``: the atom terms of every unit not done yet over its top-``k``
    images (`unit_atoms_from_activations`), one stage record per unit and dictionary."""
    for dictionary in (d for d in dictionaries.values() if d.layer == layer):
        todo = files.pending(units, _stage(dictionary))
        if not todo:
            continue
        found = unit_atoms_from_activations(net, dictionary, run, todo, k)
        for unit in progress_bar(todo, desc=f"{layer} atoms of {dictionary.name}", unit="unit",
                                 progress=progress):
            files.write(unit, _stage(dictionary), {"dictionary": dictionary.name,
                                                   "unit_layer": dictionary.unit_layer, "k": k,
                                                   **found[unit].to_dict()})


def _href(layer: str, unit: int, built: dict[str, list[int]]) -> str | None:
    """Link from a unit page to ``layer``:``unit``'s page, None when the site has no such page."""
    return f"../../{layer_slug(layer)}/units/{unit_name(unit)}.html" if unit in built.get(layer, ()) else None


def atom_facts(dictionary: Dictionary, atom: int, built: dict[str, list[int]]) -> dict[str, Any]:
    """An atom page's extra facts: its dictionary, energy share and rank, heaviest units (linked)."""
    order = dictionary.by_energy()
    return {"dictionary": dictionary.name, "method": dictionary.method, "source_layer": dictionary.layer,
            "atoms": len(dictionary), "energy": float(dictionary.energy[atom]), "rank": order.index(atom) + 1,
            "top_units": [{"unit": c, "weight": w, "href": _href(dictionary.layer, c, built)}
                          for c, w in dictionary.top_units(atom, SHOWN)]}


def unit_atom_terms(files: LayerFiles, unit: int, dictionaries: dict[str, Dictionary],
                    built: dict[str, list[int]]) -> list[dict[str, Any]]:
    """A unit page's atoms behind its top activations, per dictionary of its layer (leading atoms linked)."""
    shown = []
    for dictionary in (d for d in dictionaries.values() if d.layer == files.layer):
        if not files.done(unit, _stage(dictionary)):
            continue
        record = files.read(unit, _stage(dictionary))
        shares, terms = record["shares"], record["terms"]
        order = sorted(range(len(shares)), key=lambda a: (-shares[a], a))[:SHOWN]
        shown.append({"dictionary": record["dictionary"], "unit_layer": record["unit_layer"],
                      "k": record["k"],
                      "activation": record["activation"], "reconstruction": record["reconstruction"],
                      "atoms": [{"atom": a, "share": shares[a], "term": terms[a],
                                 "href": _href(record["unit_layer"], a, built)} for a in order]})
    return shown


def atom_list(dictionary: Dictionary, built: list[int]) -> list[dict[str, Any]]:
    """An atom layer page's list: every atom by energy share, its heaviest units, a link when built."""
    return [{"atom": a, "energy": float(dictionary.energy[a]),
             "href": f"units/{unit_name(a)}.html" if a in built else None,
             "top_units": [{"unit": c, "weight": w} for c, w in dictionary.top_units(a, 3)]}
            for a in dictionary.by_energy()]
