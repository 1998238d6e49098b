"""A unit page in a notebook: the data a site's unit page shows (``<layer>/units/NNNN.json``, written
by `site.unit_data`) and its pictures, as a displayable `View` (an atom page's energy share and
heaviest units, and a unit's leading atoms, among its numbers).

    page = UnitPage("out/site", "_blocks.8", 3)   # a built unit; in Jupyter it shows itself
    page.data["inhibition"]["tension"]            # the same numbers as the page
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._api import PhospheneError, Rich, Section, Tile, View
from .layout import LayerFiles


class UnitPage(Rich):
    """One built unit of a report site: ``data`` (the unit page's JSON) and its picture folder."""

    def __init__(self, site: str | Path, layer: str, unit: int):
        self.files = LayerFiles(Path(site), layer)
        self.layer, self.unit = layer, unit
        path = self.files.data(unit)
        if not path.is_file():
            raise PhospheneError(f"{site} has no page for {layer}:{unit}; build it with `phosphene report "
                                 f"RUN --layers {layer} --units {unit} --out {site}` or a UnitBrowser")
        self.data: dict[str, Any] = json.loads(path.read_text())
        self.folder = self.files.unit_dir(unit)

    def picture(self, name: str) -> Path:
        return self.folder / name

    def numbers(self) -> dict[str, Any]:
        """The page's key numbers: objective of the main visualization and of the best natural image,
        tension, selectivity, completeness."""
        inh, objective = self.data["inhibition"], self.data["objective"]
        numbers = {"visualization": objective["visualization"], "best natural": objective["natural"],
                   "ratio": objective["ratio"], "tension": inh["tension"], "selectivity": inh["selectivity"],
                   "r(ΣA, f)": inh["pearson"], "attribution layer": inh["attr_layer"],
                   "probe images": inh["probe"]}
        atom = self.data.get("atom")  # an atom page (sites built before atoms have no such key)
        if atom:
            numbers["energy share"] = atom["energy"]
            numbers["heaviest units"] = ", ".join(f"{t['unit']} ({t['weight']:+.2f})"
                                                  for t in atom["top_units"])
        for terms in self.data.get("atom_terms", []):
            numbers[f"atoms of {terms['dictionary']} behind its top images"] = ", ".join(
                f"{a['atom']} ({100 * a['share']:.0f}%)" for a in terms["atoms"][:3])
        return numbers

    def _visualizations(self) -> Section:
        vis = self.data["visualize"]
        pictures = [Tile(self.picture(name), f"{value:.2f}" + (" · main" if i == vis["main"] else ""))
                    for i, (name, value) in enumerate(zip(vis["images"], vis["values"]))]
        return Section("feature visualizations (channel mean under each)", pictures)

    def _exemplars(self) -> list[Section]:
        ex = self.data["exemplars"]
        sections = []
        for direction, label in (("top", "top by spatial max (red: where)"),
                                 ("bottom", "bottom by spatial min (blue: where)")):
            pictures = [Tile(self.picture(e["file"]),
                             f"{e['value']:.2f}" + ("" if e["y"] is None else f" at ({e['y']}, {e['x']})"))
                        for e in ex[direction]]
            sections.append(Section(f"{label}, {len(pictures)} exemplars", pictures))
        return sections

    def _tension(self) -> list[Section]:
        inh = self.data["inhibition"]
        scatter = Tile(self.picture(inh["scatter"]), "E⁺ vs E⁻ per probe image, coloured by f; MTIs ◇",
                       plot=True, side=340)
        pairs = []
        for m in inh["mtis"]:
            caption = f"T {m['tension']:.2f} · f {m['f']:.2f}\nE⁺ {m['e_plus']:.1f} · E⁻ {m['e_minus']:.1f}"
            pairs += [Tile(self.picture(m["file"]), caption),
                      Tile(self.picture(m["phi"]), "φ⁺ red / φ⁻ blue")]
        note = f"warning: {inh['norm_warning']}" if inh.get("norm_warning") else ""
        return [Section(f"excitation and inhibition through {inh['attr_layer']}", [scatter]),
                Section("most tense images and their φ⁺/φ⁻ maps", pairs, note)]

    def _accentuations(self) -> Section:
        acc = self.data["accentuation"]
        pictures = []
        for a in acc["rows"]:
            pictures += [Tile(self.picture(a["seed"]), f"{a['kind']} · f {a['f_before']:.2f}"),
                         Tile(self.picture(a["accent"]), f"accentuated · f {a['f_after']:.2f}"),
                         Tile(self.picture(a["mask"]), f"where it changed · R {a['r_after']:.2f}")]
        return Section(f"accentuations (λ = {acc.get('lam', 1.0):g}, regularized at "
                       f"{acc.get('reg_layer', '–')})", pictures)

    def _view(self) -> View:
        sections = [self._visualizations(), *self._exemplars(), *self._tension(), self._accentuations()]
        neighbours = [{"unit": n["unit"], "jaccard": n["jaccard"]} for n in self.data["neighbours"]]
        return View(f"{self.layer}:{self.unit} ({self.data['model']})", self.numbers(), sections,
                    table=neighbours, note="table: the units whose top exemplars overlap this one's most")

    def __repr__(self) -> str:
        return f"UnitPage({str(self.files.site)!r}, {self.layer!r}, {self.unit})"
