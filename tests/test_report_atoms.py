"""`phosphene report` with a learned dictionary: atom pages, the atom layer's list, the atoms behind a
unit's top activations, the records that re-attach the dictionary, and a changed file refused."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.report.inhibition import attribution_layer

pytest.importorskip("sklearn")


def test_an_atom_page_shows_its_energy_and_links_its_heaviest_units(atom_site):
    site, dictionary, path, _, units, _ = atom_site
    largest = dictionary.by_energy()[0]
    slug = dictionary.unit_layer
    data = json.loads((site / slug / "units" / f"{largest:04d}.json").read_text())
    atom = data["atom"]
    assert atom["rank"] == 1 and abs(atom["energy"] - float(dictionary.energy[largest])) < 1e-6
    assert [t["unit"] for t in atom["top_units"][:2]] == units
    assert [t["href"] for t in atom["top_units"][:2]] == [f"../../_blocks.8/units/{u:04d}.html"
                                                           for u in units]
    assert all(t["href"] is None for t in atom["top_units"][2:])  # no page for those units
    page = (site / slug / "units" / f"{largest:04d}.html").read_text()
    for section in ("atom", "visualizations", "exemplars", "tension", "accentuation"):
        assert f'id="{section}"' in page
    assert f'href="../../_blocks.8/units/{units[0]:04d}.html"' in page
    assert data["inhibition"]["attr_layer"] == "_blocks.7"  # attributed where _blocks.8 is
    assert f"--dictionary {path}" in data["command"]


def test_the_atom_layer_page_lists_every_atom_by_energy_share(atom_site):
    site, dictionary, _, _, _, _ = atom_site
    layer = json.loads((site / dictionary.unit_layer / "layer.json").read_text())
    assert [a["atom"] for a in layer["atoms"]] == dictionary.by_energy()
    assert all(a["href"] == f"units/{a['atom']:04d}.html" for a in layer["atoms"])  # atoms 0-3 all built
    page = (site / dictionary.unit_layer / "index.html").read_text()
    assert 'id="atoms"' in page and "energy share" in page
    assert json.loads((site / "_blocks.8" / "layer.json").read_text())["atoms"] == []


def test_a_unit_page_shows_the_atoms_behind_its_top_activations(atom_site):
    site, dictionary, _, _, units, result = atom_site
    assert result.units == {dictionary.unit_layer: [0, 1, 2, 3], "_blocks.8": sorted(units)}
    data = json.loads((site / "_blocks.8" / "units" / f"{units[0]:04d}.json").read_text())
    (terms,) = data["atom_terms"]
    assert terms["dictionary"] == dictionary.name and terms["k"] == 4
    shares = [a["share"] for a in terms["atoms"]]
    assert len(shares) == 4 and abs(sum(shares) - 1) < 1e-6 and shares == sorted(shares, reverse=True)
    links = [f"../../{dictionary.unit_layer}/units/{a['atom']:04d}.html" for a in terms["atoms"]]
    assert [a["href"] for a in terms["atoms"]] == links
    page = (site / "_blocks.8" / "units" / f"{units[0]:04d}.html").read_text()
    assert 'id="atoms"' in page and "Atoms behind its top activations" in page


def test_run_and_site_record_the_dictionary_file_and_its_sha256(atom_site):
    site, dictionary, path, run, _, _ = atom_site
    recorded = json.loads((run / "manifest.json").read_text())["config"]["dictionaries"]
    assert recorded[dictionary.unit_layer]["sha256"] == dictionary.sha256
    assert recorded[dictionary.unit_layer]["path"] == str(path.resolve())
    site_record = json.loads((site / "report.json").read_text())["dictionaries"]
    assert site_record[dictionary.unit_layer]["sha256"] == dictionary.sha256


def test_a_changed_dictionary_file_is_refused_in_one_line(atom_site, tmp_path):
    site, dictionary, path, run, _, _ = atom_site
    from phosphene.dictionary import load_dictionary

    changed = load_dictionary(path)
    changed.energy = changed.energy.flip(0)
    changed.save(tmp_path / path.name)
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    result = CliRunner().invoke(main, ["report", str(run), "--layers", dictionary.unit_layer, "--units", "0",
                                       "--out", str(copy), "--dictionary", str(tmp_path / path.name),
                                       "--steps", "4", "--size", "48", "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "changed since the site used it" in result.output and len(result.output.strip().splitlines()) == 1


def test_an_atom_layer_whose_dictionary_file_is_gone_is_one_line(atom_site, tmp_path):
    _, dictionary, _, run, _, _ = atom_site
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["config"]["dictionaries"][dictionary.unit_layer]["path"] = str(tmp_path / "gone.safetensors")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["report", str(moved), "--layers", dictionary.unit_layer, "--out",
                                       str(tmp_path / "site"), "--device", "cpu", "--quiet"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "whose file is gone" in result.output and "--dictionary FILE" in result.output
    assert not (tmp_path / "site").exists()  # nothing written


def test_attribution_layer_of_an_atom_layer_is_its_source_layers(model, atom_site):
    from phosphene.dictionary import attached

    _, dictionary, path, _, _, _ = atom_site
    with attached(model, [path]):
        assert attribution_layer(model, dictionary.unit_layer) == attribution_layer(model, "_blocks.8")


def test_the_notebook_unit_page_shows_the_atom_numbers(atom_site):
    from phosphene.report.unit_view import UnitPage

    site, dictionary, _, _, units, _ = atom_site
    largest = dictionary.by_energy()[0]
    numbers = UnitPage(site, dictionary.unit_layer, largest).numbers()
    assert abs(numbers["energy share"] - float(dictionary.energy[largest])) < 1e-6
    assert numbers["heaviest units"].startswith(f"{units[0]} (")
    unit = UnitPage(site, "_blocks.8", units[0]).numbers()
    assert unit[f"atoms of {dictionary.name} behind its top images"].count("%") == 3
